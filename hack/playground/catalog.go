package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	catalogv1 "github.com/plinth-dev/plinth/api/v1alpha1"
)

// catalogRow is one line of the catalog table: the columns of
// `kubectl get baseimages` that say what plinth decided.
type catalogRow struct {
	name, image, approved, stale, critical, high, signed, ready string
	// created is the image's creation time; zero when plinth has not
	// recorded it.
	created time.Time
}

// catalogRows returns the rows of the BaseImages, by name.
func catalogRows(items []catalogv1.BaseImage) []catalogRow {
	rows := make([]catalogRow, 0, len(items))
	for _, bi := range items {
		r := catalogRow{
			name:     bi.Name,
			image:    string(bi.Spec.Image),
			approved: conditionStatus(bi.Status.Conditions, catalogv1.ApprovedCondition),
			stale:    conditionStatus(bi.Status.Conditions, catalogv1.StaleCondition),
			signed:   conditionStatus(bi.Status.Conditions, catalogv1.SignedCondition),
			ready:    conditionStatus(bi.Status.Conditions, catalogv1.ReadyCondition),
		}
		if v := bi.Status.Vulnerabilities; v != nil {
			r.critical, r.high = fmt.Sprint(v.Critical.Total), fmt.Sprint(v.High.Total)
		}
		if bi.Status.ImageCreated != nil {
			r.created = bi.Status.ImageCreated.UTC()
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b catalogRow) int { return strings.Compare(a.name, b.name) })
	return rows
}

// sameRows reports whether two tables say the same. Ages are compared as
// creation times, so that the table is not printed again only because time
// has passed.
func sameRows(a, b []catalogRow) bool {
	return slices.EqualFunc(a, b, func(x, y catalogRow) bool {
		return x.name == y.name && x.image == y.image && x.approved == y.approved && x.stale == y.stale &&
			x.critical == y.critical && x.high == y.high && x.signed == y.signed && x.ready == y.ready && x.created.Equal(y.created)
	})
}

// conditionStatus is the status of the condition of type t, "" when absent.
func conditionStatus(conds []metav1.Condition, t string) string {
	if c := meta.FindStatusCondition(conds, t); c != nil {
		return string(c.Status)
	}
	return ""
}

// renderCatalog prints the rows as kubectl does (its tabwriter settings), ages counted up to now. An
// image age plinth has not recorded is "unknown". SIGNED, which kubectl does
// not show, is the status of the Signed condition: empty when the policy does
// not sign.
func renderCatalog(rows []catalogRow, now time.Time) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 6, 4, 3, ' ', 0)
	fmt.Fprintln(w, "NAME\tIMAGE\tAPPROVED\tSTALE\tCRITICAL\tHIGH\tIMAGE AGE\tSIGNED\tREADY")
	for _, r := range rows {
		age := "unknown"
		if !r.created.IsZero() {
			age = duration.HumanDuration(now.Sub(r.created))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.name, r.image, r.approved, r.stale, r.critical, r.high, age, r.signed, r.ready)
	}
	_ = w.Flush()
	return b.String()
}

// watchCatalog lists the BaseImages of namespace every interval and writes
// the catalog table to out whenever it changed, until ctx ends. A failing
// list is reported once, not at every attempt.
func watchCatalog(ctx context.Context, c client.Reader, namespace string, every time.Duration, out io.Writer, now func() time.Time) {
	var (
		last    []catalogRow
		printed bool
		lastErr string
	)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var list catalogv1.BaseImageList
		if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			if ctx.Err() != nil {
				return
			}
			if msg := err.Error(); msg != lastErr {
				fmt.Fprintf(out, "Cannot read the catalog: %v\n", err)
				lastErr = msg
			}
		} else {
			lastErr = ""
			rows := catalogRows(list.Items)
			if !printed || !sameRows(rows, last) {
				t := now()
				var b strings.Builder
				fmt.Fprintf(&b, "\nThe catalog in namespace %s at %s:\n", namespace, t.Format(time.TimeOnly))
				if len(rows) == 0 {
					b.WriteString("No BaseImages yet.\n")
				} else {
					b.WriteString(renderCatalog(rows, t))
				}
				// One write, so that the operator's log lines do not split
				// the table.
				_, _ = io.WriteString(out, b.String())
				last, printed = rows, true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// printCatalog runs watchCatalog on stdout in the background. The returned
// function stops it and waits until it has.
func printCatalog(ctx context.Context, c client.Reader, namespace string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchCatalog(ctx, c, namespace, catalogPollInterval, os.Stdout, time.Now)
	}()
	return func() { cancel(); <-done }
}
