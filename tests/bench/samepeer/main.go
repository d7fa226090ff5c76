// samepeer: client-go writing the operator's own ChangeOrders, to tell how much of the gap to
// the team's baseline (rawclient) comes from what is written rather than how. It reads one
// ChangeOrder as the operator stored it (JSON: labels, ownerReferences, spec, status with its
// five conditions and batches), then writes N copies with fresh names: a create, then a status
// update at the version the create returned, WORKERS at a time. With -watch it also keeps a
// watch on the namespace open, decoding every event, as the operator's informer does.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	n := flag.Int("n", 10000, "objects")
	workers := flag.Int("workers", 8, "concurrent writers")
	ns := flag.String("namespace", "same", "namespace (with a ChangeOrderWatch named as the sample's owner)")
	sample := flag.String("sample", "", "one ChangeOrder as JSON, as the operator stored it")
	watch := flag.Bool("watch", false, "keep a watch on the namespace open, as an informer does")
	flag.Parse()
	raw, err := os.ReadFile(*sample)
	if err != nil {
		panic(err)
	}
	var proto map[string]interface{}
	if err := json.Unmarshal(raw, &proto); err != nil {
		panic(err)
	}
	meta, _ := proto["metadata"].(map[string]interface{})
	status := proto["status"]
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		panic(err)
	}
	cfg.QPS, cfg.Burst = 100000, 100000
	dc := dynamic.NewForConfigOrDie(cfg)
	res := dc.Resource(schema.GroupVersionResource{Group: "changeorder.io", Version: "v1alpha1", Resource: "changeorders"}).Namespace(*ns)
	if *watch {
		w, err := res.Watch(context.Background(), metav1.ListOptions{})
		if err != nil {
			panic(err)
		}
		go func() {
			for range w.ResultChan() {
			}
		}()
	}
	// The owner must exist, or the garbage collector deletes the copies as orphans.
	owners, _ := meta["ownerReferences"].([]interface{})
	if len(owners) == 1 {
		ref := owners[0].(map[string]interface{})
		watches := dc.Resource(schema.GroupVersionResource{Group: "changeorder.io", Version: "v1alpha1", Resource: "changeorderwatches"}).Namespace(*ns)
		owner, err := watches.Get(context.Background(), ref["name"].(string), metav1.GetOptions{})
		if err != nil {
			panic(fmt.Sprintf("the sample's owner watch %v must exist in %s: %v", ref["name"], *ns, err))
		}
		ref["uid"] = string(owner.GetUID())
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	start := time.Now()
	for i := 0; i < *workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				name := fmt.Sprintf("same-%05d", i)
				spec := map[string]interface{}{}
				for k, v := range proto["spec"].(map[string]interface{}) {
					spec[k] = v
				}
				spec["changeOrderId"] = name
				o := &unstructured.Unstructured{Object: map[string]interface{}{
					"apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrder",
					"metadata": map[string]interface{}{"name": name, "labels": meta["labels"], "ownerReferences": meta["ownerReferences"]},
					"spec":     spec,
				}}
				got, err := res.Create(context.Background(), o, metav1.CreateOptions{FieldManager: "samepeer"})
				if err == nil {
					got.Object["status"] = status
					_, err = res.UpdateStatus(context.Background(), got, metav1.UpdateOptions{FieldManager: "samepeer"})
				}
				if err != nil {
					mu.Lock()
					failures++
					if failures < 4 {
						fmt.Fprintln(os.Stderr, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < *n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("samepeer: %d objects (create + status) in %.2f s = %.0f objects/s, %d failures\n", *n, secs, float64(*n)/secs, failures)
}
