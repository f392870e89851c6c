package controllers

import (
	"context"
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
	"github.com/plinth-dev/plinth/internal/inventory"
)

// DefaultConsumersInterval is how often the consumer counts of the
// BaseImages are written.
const DefaultConsumersInterval = time.Minute

// ConsumerCounts writes, in batches, how many running Pods, namespaces and
// containers are built on each BaseImage (status.consumers). It runs on a
// ticker, not on Pod events: each round computes the counts from the
// inventory and patches only the entries whose counts changed, touching
// only that field and without an optimistic lock, so that it never fights
// the BaseImage reconciler over the rest of the status.
type ConsumerCounts struct {
	// Client lists and patches BaseImages.
	Client client.Client
	// Store is the inventory the counts come from.
	Store *inventory.Store
	// Interval is the time between rounds; the first round waits one
	// interval too, so the inventory has seen the cluster's Pods. Default
	// DefaultConsumersInterval.
	Interval time.Duration
}

// Start runs the rounds until ctx ends. It implements manager.Runnable;
// only the leader writes.
func (c *ConsumerCounts) Start(ctx context.Context) error {
	t := time.NewTicker(positive(c.Interval, DefaultConsumersInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := c.Update(ctx); err != nil && ctx.Err() == nil {
				logf.FromContext(ctx).WithName("consumers").Error(err, "Cannot update the consumer counts")
			}
		}
	}
}

// Update runs one round: it patches status.consumers of every BaseImage
// whose counts changed, and returns the first error met (after trying
// every entry).
func (c *ConsumerCounts) Update(ctx context.Context) error {
	sum := c.Store.Summary()
	var list catalogv1.BaseImageList
	if err := c.Client.List(ctx, &list); err != nil {
		return err
	}
	var first error
	for i := range list.Items {
		bi := &list.Items[i]
		want := consumersOf(sum.Bases[types.NamespacedName{Namespace: bi.Namespace, Name: bi.Name}])
		if have := bi.Status.Consumers; have != nil && *have == want || have == nil && want == (catalogv1.ConsumersStatus{}) {
			// A new entry gets its zero counts with its first status, from
			// the BaseImage reconciler: a write here would only race it.
			continue
		}
		patch, err := json.Marshal(map[string]any{"status": map[string]any{"consumers": want}})
		if err != nil {
			return err
		}
		if err := c.Client.Status().Patch(ctx, bi, client.RawPatch(types.MergePatchType, patch)); err != nil && first == nil {
			first = client.IgnoreNotFound(err)
		}
	}
	return first
}

// consumersOf converts the inventory's counts to the status field.
func consumersOf(b *inventory.Consumers) catalogv1.ConsumersStatus {
	if b == nil {
		return catalogv1.ConsumersStatus{}
	}
	return catalogv1.ConsumersStatus{
		Pods:       int32(b.Pods),
		Namespaces: int32(b.Namespaces),
		Containers: int32(b.Containers),
		Superseded: int32(b.Superseded),
	}
}
