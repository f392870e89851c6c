package scan

import "testing"

func TestBudgetSplit(t *testing.T) {
	const (
		MiB = int64(1) << 20
		GiB = int64(1) << 30
	)
	cases := []struct {
		name          string
		total         int64
		dbFile, maxDB int64
		want          DiskBudget
		wantErr       bool
	}{
		// The default volume with a DB of 900 MiB loaded.
		{"default, DB loaded", 4 * GiB, 900 * MiB, 4 * GiB, DiskBudget{DB: 1800 * MiB, Spool: 574 * MiB, Layers: 1148 * MiB, Results: 574 * MiB}, false},
		// No DB yet: the largest acceptable DB is reserved; nothing can
		// be scanned anyway.
		{"default, no DB", 4 * GiB, 0, 4 * GiB, DiskBudget{DB: 4 * GiB}, true},
		{"no DB, small max", 4 * GiB, 0, 2 * GiB, DiskBudget{DB: 2 * GiB, Spool: 512 * MiB, Layers: 1 * GiB, Results: 512 * MiB}, false},
		{"large volume", 20 * GiB, 1 * GiB, 4 * GiB, DiskBudget{DB: 2 * GiB, Spool: 4608 * MiB, Layers: 9 * GiB, Results: 4608 * MiB}, false},
		{"odd bytes go to results", 1003, 1, 0, DiskBudget{DB: 2, Spool: 250, Layers: 500, Results: 251}, false},
		{"DB larger than the volume", 1 * GiB, 600 * MiB, 4 * GiB, DiskBudget{DB: 1200 * MiB}, true},
		{"zero volume", 0, 1, 1, DiskBudget{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BudgetSplit(tc.total, DBReserve(tc.dbFile, tc.maxDB))
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("BudgetSplit = %+v, want %+v", got, tc.want)
			}
			if err == nil && got.DB+got.Spool+got.Layers+got.Results != tc.total {
				t.Errorf("shares sum to %d, want %d", got.DB+got.Spool+got.Layers+got.Results, tc.total)
			}
		})
	}
}
