#!/usr/bin/env bash
# A pipeline step: wait until the release waits for a person to confirm the next batch, run a
# check against the first batch, then confirm (or abort when the check fails).
#
# Needs: the operator with --enable-actions (Helm actions.enabled=true), the watch allowing
# Confirm and Abort (spec.actions.allowed), and an identity bound to the <release>-actions
# ClusterRole. Usage: confirm-after-check.sh NAMESPACE WATCH CHECK_COMMAND...
set -euo pipefail

ns=$1 watch=$2
shift 2

# Ask for a poll now, then wait for the newest order to need a person.
kubectl -n "$ns" annotate "cow/$watch" changeorder.io/reconcile-requested-at="$(date +%s)" --overwrite
kubectl -n "$ns" wait "cow/$watch" --for=condition=LatestOrderAwaitingInput --timeout=30m
order=$(kubectl -n "$ns" get "cow/$watch" -o jsonpath='{.status.latestOrder.name}')
kubectl -n "$ns" wait "co/$order" --for=jsonpath='{.status.phase}'=AwaitingConfirmation --timeout=5m
batch=$(kubectl -n "$ns" get "co/$order" -o jsonpath='{.status.currentBatch}')
echo "changeorder/$order waits for confirmation of batch $batch"

if "$@"; then
  action=Confirm
else
  echo "check failed: aborting the release" >&2
  action=Abort
fi

name="$order-$(echo "$action" | tr '[:upper:]' '[:lower:]')-$(date +%s)"
guard=""
if [ "$action" = Confirm ]; then
  # Only the batch just checked: a stale run cannot confirm a later batch.
  guard="  expectedBatch: $batch"
fi
kubectl -n "$ns" create -f - <<YAML
apiVersion: changeorder.io/v1alpha1
kind: ChangeOrderAction
metadata:
  name: $name
spec:
  changeOrder: $order
  action: $action
$guard
YAML
kubectl -n "$ns" wait "changeorderaction/$name" --for=condition=Succeeded --timeout=2m
kubectl -n "$ns" get "changeorderaction/$name" -o jsonpath='{.status.message}{"\n"}'
[ "$action" = Confirm ]
