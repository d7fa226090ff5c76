// fluxcel evaluates the CEL health-check expressions of a Flux Kustomization
// (spec.healthCheckExprs) against objects, the way Flux exposes an object to them: its
// top-level fields (apiVersion, kind, metadata, spec, status) as dynamic variables, with CEL's
// optional syntax (`a.?b`, `m[?k]`, `orValue`) and the string extensions enabled. A top-level
// field the object lacks (usually status) is given as an empty map, so the expressions must
// guard nested fields with `.?` as the example's do.
//
// Input on stdin, one JSON document: {"exprs": {"inProgress": "...", "failed": "...",
// "current": "..."}, "objects": [...]}. Output: one line per object with the verdict Flux would
// reach: the first of inProgress, failed, current that is true, else "InProgress" (Flux keeps
// waiting). A compile error of any expression exits 2.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
)

type input struct {
	Exprs   map[string]string        `json:"exprs"`
	Objects []map[string]interface{} `json:"objects"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail("reading input: %v", err)
	}
	env, err := cel.NewEnv(
		cel.Variable("apiVersion", cel.DynType),
		cel.Variable("kind", cel.DynType),
		cel.Variable("metadata", cel.DynType),
		cel.Variable("spec", cel.DynType),
		cel.Variable("status", cel.DynType),
		cel.OptionalTypes(),
		ext.Strings(),
	)
	if err != nil {
		fail("environment: %v", err)
	}
	order := []string{"inProgress", "failed", "current"}
	programs := map[string]cel.Program{}
	for _, name := range order {
		text, ok := in.Exprs[name]
		if !ok || text == "" {
			continue
		}
		ast, iss := env.Compile(text)
		if iss.Err() != nil {
			fail("%s: %v", name, iss.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			fail("%s: %v", name, err)
		}
		programs[name] = prg
	}
	for _, obj := range in.Objects {
		vars := map[string]interface{}{}
		for _, k := range []string{"apiVersion", "kind", "metadata", "spec", "status"} {
			if v, ok := obj[k]; ok {
				vars[k] = v
			} else {
				vars[k] = map[string]interface{}{}
			}
		}
		verdict := "InProgress"
		for _, name := range order {
			prg, ok := programs[name]
			if !ok {
				continue
			}
			out, _, err := prg.Eval(vars)
			if err != nil {
				fail("%s: evaluating: %v", name, err)
			}
			if b, ok := out.Value().(bool); ok && b {
				verdict = map[string]string{"inProgress": "InProgress", "failed": "Failed", "current": "Current"}[name]
				break
			}
		}
		fmt.Println(verdict)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "fluxcel: "+format+"\n", args...)
	os.Exit(2)
}
