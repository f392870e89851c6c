package scan

import "fmt"

// DefaultCacheMaxBytes is the default bound of the cache volume: the
// emptyDir sizeLimit of the manager's cache volume (4Gi).
const DefaultCacheMaxBytes = int64(4) << 30

// DiskBudget is how the cache volume is shared, in bytes.
type DiskBudget struct {
	// DB is held for the vulnerability DB: the loaded one plus one
	// download in progress (see DBReserve).
	DB int64
	// Spool holds the compressed layers being downloaded for the scans in
	// progress, before they are analysed. A layer larger than Spool cannot
	// be scanned.
	Spool int64
	// Layers bounds the layer analysis cache.
	Layers int64
	// Results bounds the persisted reports of the current DB version.
	Results int64
}

// DBReserve is the room the vulnerability DB needs: twice the size of the
// loaded trivy.db (itself, and a new build of about the same size being
// downloaded beside it), or maxDBSize, the largest DB a download accepts,
// while no DB is loaded. Without a DB nothing is scanned, so reserving the
// worst case then costs nothing; the split is computed again once a DB is
// loaded.
func DBReserve(dbFileSize, maxDBSize int64) int64 {
	if dbFileSize > 0 {
		return 2 * dbFileSize
	}
	return maxDBSize
}

// BudgetSplit shares total bytes of cache volume: dbReserve (see
// DBReserve) first; of the rest, a quarter for the download spool, half
// for the layer cache and a quarter for persisted reports. It returns an
// error, with every share but DB zero, when dbReserve leaves nothing.
func BudgetSplit(total, dbReserve int64) (DiskBudget, error) {
	if total <= 0 {
		return DiskBudget{}, fmt.Errorf("cache budget of %d bytes is not positive", total)
	}
	b := DiskBudget{DB: dbReserve}
	rest := total - dbReserve
	if rest <= 0 {
		return b, fmt.Errorf("cache budget of %d bytes leaves no room beside the vulnerability DB's %d bytes", total, dbReserve)
	}
	b.Spool = rest / 4
	b.Layers = rest / 2
	b.Results = rest - b.Spool - b.Layers
	return b, nil
}
