package v1alpha1

// ReconcileRequestAnnotation asks plinth to re-evaluate an object now rather
// than at its next interval. Set it to any new value, e.g. the current time:
//
//	kubectl annotate baseimage python reconcile.plinth.dev/requestedAt="$(date +%s)" --overwrite
const ReconcileRequestAnnotation = "reconcile.plinth.dev/requestedAt"
