// kstatus reads Kubernetes objects as JSON (a stream of objects on stdin) and prints, one line
// per object, the status that kstatus (github.com/fluxcd/cli-utils, the library Flux and Helm 4
// use to wait) computes for it: "Current", "InProgress", "Failed", ... followed by a tab and
// kstatus's message. The integration tests use it to check the operator's conditions with the
// real rules instead of a transcription of them.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func main() {
	dec := json.NewDecoder(os.Stdin)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: reading an object:", err)
			os.Exit(2)
		}
		// Unstructured's own decoder keeps integers as int64, which kstatus's accessors need.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: decoding an object:", err)
			os.Exit(2)
		}
		res, err := status.Compute(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus: computing the status:", err)
			os.Exit(2)
		}
		fmt.Printf("%s\t%s\n", res.Status, res.Message)
	}
}
