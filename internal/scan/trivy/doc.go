// Package trivy implements scan.Scanner with Trivy as a library,
// in-process, and manages Trivy's vulnerability database. It is the only
// package of plinth that links Trivy; import it from main only.
//
// DBManager owns the database. It downloads the DB artifact from an OCI
// repository (the public mirrors by default, or a private mirror with its
// own credentials, CA or plain HTTP), checks media types, size and digest,
// extracts only trivy.db and metadata.json, checks both, and swaps the new
// DB in while scans run: Trivy keeps one process-wide DB handle, so scans
// hold a read lock while they look up advisories and the swap takes the
// write lock. A failed update keeps the previous DB. On start, the DB in
// the cache directory is used without network access.
//
// Scanner makes cost follow change:
//   - Reports are cached by (digest, platforms, DB version), in memory and
//     as JSON files on disk, so neither a repeated request nor a restart
//     rescans an unchanged digest under an unchanged DB.
//   - Layer analyses (the packages found per layer) are cached on disk by
//     diffID within a byte bound, so a DB update re-evaluates every digest
//     without downloading a layer again.
//   - Scans run in a bounded pool, and concurrent requests for one digest
//     share a scan.
//   - Image limits (layer count, layer size, total size) are checked from
//     the manifests before any layer is downloaded.
//   - While a layer is analysed, it may inflate only so far (a
//     decompression bomb stops the scan), and an entry whose name climbs
//     out of the root makes the image invalid.
//   - Missing layers are downloaded to a bounded spool before Trivy
//     analyses them, so no network I/O happens under the lock that keeps
//     Trivy's shared analysers race-free; each scan has a deadline.
//   - One bound, the cache volume's size, is shared between the DB (twice
//     its size, for a download beside it), the spool, the layer cache and
//     the persisted reports (see scan.BudgetSplit).
package trivy
