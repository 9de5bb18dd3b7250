package cache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// entryOfCost returns an entry whose Cost(key) is exactly cost.
func entryOfCost(t testing.TB, key string, cost int64) *Entry {
	t.Helper()
	e := &Entry{Status: 200}
	body := cost - e.Cost(key)
	if body < 0 {
		t.Fatalf("entryOfCost(%q, %d): smallest possible cost is %d", key, cost, e.Cost(key))
	}
	e.Body = make([]byte, body)
	if got := e.Cost(key); got != cost {
		t.Fatalf("entryOfCost(%q, %d): Cost = %d", key, cost, got)
	}
	return e
}

func newTestCache(t testing.TB, cfg Config) *Cache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	t.Cleanup(c.Close)
	return c
}

func wantStats(t *testing.T, c *Cache, want Stats) {
	t.Helper()
	if got := c.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestStoreNewConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "ok", cfg: Config{MaxBytes: 1000}},
		{name: "zero MaxBytes", cfg: Config{}, wantErr: true},
		{name: "negative MaxBytes", cfg: Config{MaxBytes: -1}, wantErr: true},
		{name: "negative MaxObjectBytes", cfg: Config{MaxBytes: 1000, MaxObjectBytes: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%+v) error = %v, want error %v", tt.cfg, err, tt.wantErr)
			}
			if c != nil {
				c.Close()
			}
		})
	}
}

// TestStoreSetThenGet is the guarantee the proxy relies on: a response
// fetched once is a hit on the next request, with no wait in between.
func TestStoreSetThenGet(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		cost     int64
	}{
		{name: "roomy", maxBytes: 100 << 20, cost: 200},
		{name: "full, evicting on every set", maxBytes: 10_000, cost: 1000},
		{name: "one object at a time", maxBytes: 1000, cost: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, Config{MaxBytes: tt.maxBytes, MaxObjectBytes: tt.maxBytes})
			for i := range 2000 {
				key := fmt.Sprintf("http://example.com/%05d", i)
				e := entryOfCost(t, key, tt.cost)
				if err := c.Set(key, e); err != nil {
					t.Fatalf("Set(%q) = %v, want nil", key, err)
				}
				if got, ok := c.Get(key); !ok || got != e {
					t.Fatalf("Get(%q) after Set = %p, %v, want %p, true", key, got, ok, e)
				}
			}
			if s := c.Stats(); s.Bytes > tt.maxBytes {
				t.Errorf("Stats().Bytes = %d, want <= %d", s.Bytes, tt.maxBytes)
			}
		})
	}
}

func TestStoreLRUOrder(t *testing.T) {
	key := func(i int) string { return fmt.Sprintf("k%02d", i) }
	tests := []struct {
		name        string
		touch       func(c *Cache) // applied after k00..k09 fill the cache
		insert      []int          // keys set afterwards
		wantPresent []int
		wantEvicted []int // in eviction order
	}{
		{
			name:        "untouched oldest go first",
			insert:      []int{10, 11},
			wantPresent: []int{2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
			wantEvicted: []int{0, 1},
		},
		{
			name:        "touched by Get survives",
			touch:       func(c *Cache) { c.Get(key(0)) },
			insert:      []int{10, 11},
			wantPresent: []int{0, 3, 4, 5, 6, 7, 8, 9, 10, 11},
			wantEvicted: []int{1, 2},
		},
		{
			name: "touched by Set survives",
			touch: func(c *Cache) {
				c.Set(key(1), &Entry{Status: 200, Body: make([]byte, 100-64-3)})
			},
			insert:      []int{10, 11},
			wantPresent: []int{1, 3, 4, 5, 6, 7, 8, 9, 10, 11},
			wantEvicted: []int{0, 2},
		},
		{
			name:        "deleted key frees room without an eviction",
			touch:       func(c *Cache) { c.Delete(key(5)) },
			insert:      []int{10, 11},
			wantPresent: []int{1, 2, 3, 4, 6, 7, 8, 9, 10, 11},
			wantEvicted: []int{0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var evicted []string
			c := newTestCache(t, Config{
				MaxBytes: 1000,
				// OnEvict runs inside Set, which this test calls from one
				// goroutine only.
				OnEvict: func(key string, cost int64) {
					if cost != 100 {
						t.Errorf("OnEvict(%q, %d), want cost 100", key, cost)
					}
					evicted = append(evicted, key)
				},
			})
			for i := range 10 {
				c.Set(key(i), entryOfCost(t, key(i), 100))
			}
			if tt.touch != nil {
				tt.touch(c)
			}
			for _, i := range tt.insert {
				if err := c.Set(key(i), entryOfCost(t, key(i), 100)); err != nil {
					t.Fatalf("Set(%q) = %v, want nil", key(i), err)
				}
			}

			var wantEvicted []string
			for _, i := range tt.wantEvicted {
				wantEvicted = append(wantEvicted, key(i))
			}
			if !slices.Equal(evicted, wantEvicted) {
				t.Errorf("evicted %q, want %q", evicted, wantEvicted)
			}
			for i := range 12 {
				_, ok := c.Get(key(i))
				if want := slices.Contains(tt.wantPresent, i); ok != want {
					t.Errorf("Get(%q) ok = %v, want %v", key(i), ok, want)
				}
			}
			wantStats(t, c, Stats{
				Objects:   int64(len(tt.wantPresent)),
				Bytes:     100 * int64(len(tt.wantPresent)),
				Evictions: uint64(len(tt.wantEvicted)),
			})
		})
	}
}

func TestStoreRefusesOversize(t *testing.T) {
	// The object limit bounds the body, so that a response of exactly
	// maxObjectSize is stored; the whole entry must fit in the cache.
	const big = "big"
	overhead := (&Entry{Status: 200}).Cost(big) // cost of an empty body
	tests := []struct {
		name    string
		cfg     Config
		body    int64
		wantErr error
	}{
		{name: "above default MaxBytes/4", cfg: Config{MaxBytes: 1000}, body: 251, wantErr: ErrTooLarge},
		{name: "exactly default MaxBytes/4", cfg: Config{MaxBytes: 1000}, body: 250},
		{name: "above MaxObjectBytes", cfg: Config{MaxBytes: 1000, MaxObjectBytes: 100}, body: 101, wantErr: ErrTooLarge},
		{name: "exactly MaxObjectBytes", cfg: Config{MaxBytes: 1000, MaxObjectBytes: 100}, body: 100},
		{name: "MaxObjectBytes above MaxBytes", cfg: Config{MaxBytes: 1000, MaxObjectBytes: 5000}, body: 1001, wantErr: ErrTooLarge},
		{name: "entry exactly MaxBytes", cfg: Config{MaxBytes: 1000, MaxObjectBytes: 1000}, body: 1000 - overhead},
		{name: "body fits, entry above MaxBytes", cfg: Config{MaxBytes: 1000, MaxObjectBytes: 1000}, body: 1000 - overhead + 1, wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, tt.cfg)
			// Fill the cache completely with small entries.
			var keys []string
			for i := range 10 {
				k := fmt.Sprintf("f%02d", i)
				keys = append(keys, k)
				c.Set(k, entryOfCost(t, k, 100))
			}
			before := c.Stats()

			wantStore := tt.wantErr == nil
			if err := c.Set(big, &Entry{Status: 200, Body: make([]byte, tt.body)}); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Set(%q) with a %d-byte body = %v, want %v", big, tt.body, err, tt.wantErr)
			}
			if _, ok := c.Get(big); ok != wantStore {
				t.Errorf("Get(%q) ok = %v, want %v", big, ok, wantStore)
			}
			if wantStore {
				if s := c.Stats(); s.Bytes > tt.cfg.MaxBytes {
					t.Errorf("Stats().Bytes = %d, want <= %d", s.Bytes, tt.cfg.MaxBytes)
				}
				return
			}
			wantStats(t, c, before)
			for _, k := range keys {
				if _, ok := c.Get(k); !ok {
					t.Errorf("Get(%q) missed after a refused Set", k)
				}
			}
		})
	}
}

func TestStoreReplaceKeepsBytesExact(t *testing.T) {
	const key = "http://example.com/x"
	tests := []struct {
		name      string
		fill      int     // entries of cost 100 stored first, oldest first
		costs     []int64 // successive costs stored under key
		wantBytes int64
		wantEvict uint64
	}{
		{name: "bigger", costs: []int64{200, 500}, wantBytes: 500},
		{name: "smaller", costs: []int64{500, 200}, wantBytes: 200},
		{name: "same", costs: []int64{300, 300, 300}, wantBytes: 300},
		{name: "up and down", costs: []int64{100, 1000, 150, 999, 101}, wantBytes: 101},
		// key is stored first, so it is the least recently used entry when
		// it grows: the others make room, never key itself.
		{name: "bigger when full evicts others", fill: 8, costs: []int64{200, 400}, wantBytes: 1000, wantEvict: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, Config{MaxBytes: 1000, MaxObjectBytes: 1000})
			var last *Entry
			for i, cost := range tt.costs {
				last = entryOfCost(t, key, cost)
				if err := c.Set(key, last); err != nil {
					t.Fatalf("Set(%q) with cost %d = %v, want nil", key, cost, err)
				}
				if i == 0 {
					for j := range tt.fill {
						k := fmt.Sprintf("f%02d", j)
						c.Set(k, entryOfCost(t, k, 100))
					}
				}
			}
			if got, ok := c.Get(key); !ok || got != last {
				t.Errorf("Get(%q) = %p, %v, want %p, true", key, got, ok, last)
			}
			s := c.Stats()
			if s.Bytes != tt.wantBytes || s.Evictions != tt.wantEvict {
				t.Errorf("Stats() = %+v, want Bytes %d, Evictions %d", s, tt.wantBytes, tt.wantEvict)
			}
			if got := sumPresent(c, append(fillKeys(tt.fill), key)); got != s.Bytes {
				t.Errorf("sum of present costs = %d, Stats().Bytes = %d", got, s.Bytes)
			}
		})
	}
}

func fillKeys(n int) []string {
	var keys []string
	for j := range n {
		keys = append(keys, fmt.Sprintf("f%02d", j))
	}
	return keys
}

// sumPresent returns the total cost of those of keys that c holds.
func sumPresent(c *Cache, keys []string) int64 {
	var n int64
	for _, k := range keys {
		if e, ok := c.Get(k); ok {
			n += e.Cost(k)
		}
	}
	return n
}

// TestStoreIndexFollowsRistretto covers the paths where ristretto and the
// index could disagree: the index must never list a key ristretto lacks.
func TestStoreIndexFollowsRistretto(t *testing.T) {
	tests := []struct {
		name string
		// break runs on a cache holding "a" and "b" (cost 100 each), then
		// the test checks that Stats and Get agree on what is left.
		breakIt   func(t *testing.T, c *Cache)
		wantStats Stats
	}{
		{
			name:      "ristretto lost a key",
			breakIt:   func(t *testing.T, c *Cache) { c.rc.Del("a") },
			wantStats: Stats{Objects: 1, Bytes: 100},
		},
		{
			name: "ristretto rejects a new key",
			breakIt: func(t *testing.T, c *Cache) {
				c.rc.UpdateMaxCost(50) // the policy now rejects cost 100
				defer c.rc.UpdateMaxCost(c.maxBytes)
				if err := c.Set("c", entryOfCost(t, "c", 100)); !errors.Is(err, ErrDropped) {
					t.Errorf("Set(%q) = %v while ristretto rejects it, want ErrDropped", "c", err)
				}
			},
			wantStats: Stats{Objects: 2, Bytes: 200},
		},
		{
			name:      "closed",
			breakIt:   func(t *testing.T, c *Cache) { c.Close(); c.Close() },
			wantStats: Stats{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, Config{MaxBytes: 1000})
			c.Set("a", entryOfCost(t, "a", 100))
			c.Set("b", entryOfCost(t, "b", 100))
			tt.breakIt(t, c)

			var got Stats
			for _, k := range []string{"a", "b", "c"} {
				if e, ok := c.Get(k); ok {
					got.Objects++
					got.Bytes += e.Cost(k)
				}
			}
			if got != tt.wantStats {
				t.Errorf("present after Get = %+v, want %+v", got, tt.wantStats)
			}
			wantStats(t, c, tt.wantStats)
		})
	}
}

func TestStoreConcurrent(t *testing.T) {
	const (
		maxBytes   = 20_000
		goroutines = 8
		ops        = 3000
		numKeys    = 64
	)
	keys := make([]string, numKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("http://example.com/%02d", i)
	}
	tests := []struct {
		name    string
		setPct  int // the rest split between Get and Delete
		delPct  int
		closeAt int // if > 0, one goroutine closes the cache after this many ops
	}{
		{name: "mostly gets", setPct: 10, delPct: 2},
		{name: "write heavy", setPct: 60, delPct: 20},
		{name: "close while busy", setPct: 30, delPct: 10, closeAt: ops / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, Config{MaxBytes: maxBytes})
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 42))
					for i := range ops {
						if tt.closeAt > 0 && g == 0 && i == tt.closeAt {
							c.Close()
						}
						k := keys[r.IntN(numKeys)]
						switch p := r.IntN(100); {
						case p < tt.setPct:
							e := &Entry{Status: 200, Body: make([]byte, r.IntN(maxBytes/4-200))}
							c.Set(k, e)
						case p < tt.setPct+tt.delPct:
							c.Delete(k)
						default:
							if e, ok := c.Get(k); ok && e.Status != 200 {
								t.Errorf("Get(%q).Status = %d, want 200", k, e.Status)
							}
						}
					}
				})
			}
			wg.Wait()

			s := c.Stats()
			var objects int64
			for _, k := range keys {
				if _, ok := c.Get(k); ok {
					objects++
				}
			}
			if got := sumPresent(c, keys); got != s.Bytes || objects != s.Objects {
				t.Errorf("present: %d objects, %d bytes; Stats() = %+v", objects, got, s)
			}
			if s.Bytes > maxBytes {
				t.Errorf("Stats().Bytes = %d, want <= %d", s.Bytes, maxBytes)
			}
			if tt.closeAt > 0 && (s.Objects != 0 || s.Bytes != 0) {
				t.Errorf("Stats() after Close = %+v, want no objects", s)
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	const numKeys = 10_000
	c := newTestCache(b, Config{MaxBytes: 100 << 20})
	keys := make([]string, numKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("http://files.pythonhosted.org/packages/%05d/pkg-1.0.tar.gz", i)
		c.Set(keys[i], &Entry{Status: 200, Body: make([]byte, 4096)})
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(numKeys)
		for pb.Next() {
			if _, ok := c.Get(keys[i]); !ok {
				b.Errorf("Get(%q) missed", keys[i])
				return
			}
			i = (i + 1) % numKeys
		}
	})
}

// TestStoreReserve: room reserved for a fill evicts like a Set would, counts
// against MaxBytes until released, and a release is idempotent.
func TestStoreReserve(t *testing.T) {
	key := func(i int) string { return fmt.Sprintf("k%02d", i) }
	var evicted []string
	c := newTestCache(t, Config{
		MaxBytes: 1000,
		OnEvict:  func(key string, cost int64) { evicted = append(evicted, key) },
	})
	for i := range 10 {
		c.Set(key(i), entryOfCost(t, key(i), 100))
	}

	release := c.Reserve(250) // needs three entries' room
	if want := []string{key(0), key(1), key(2)}; !slices.Equal(evicted, want) {
		t.Errorf("Reserve(250) evicted %q, want %q", evicted, want)
	}
	wantStats(t, c, Stats{Objects: 7, Bytes: 700, Reserved: 250, Evictions: 3})

	// A Set while the room is reserved must not use it.
	c.Set(key(10), entryOfCost(t, key(10), 100))
	if want := []string{key(0), key(1), key(2), key(3)}; !slices.Equal(evicted, want) {
		t.Errorf("Set during a reservation evicted %q, want %q", evicted, want)
	}

	release()
	release() // a second call gives nothing back twice
	wantStats(t, c, Stats{Objects: 7, Bytes: 700, Evictions: 4})

	// The finished entry takes the room the reservation freed: no eviction.
	if err := c.Set(key(11), entryOfCost(t, key(11), 250)); err != nil {
		t.Fatalf("Set after release = %v, want nil", err)
	}
	if len(evicted) != 4 {
		t.Errorf("Set into released room evicted %q", evicted[4:])
	}
	wantStats(t, c, Stats{Objects: 8, Bytes: 950, Evictions: 4})

	c.Reserve(0)() // nothing to reserve: a no-op
	wantStats(t, c, Stats{Objects: 8, Bytes: 950, Evictions: 4})
}
