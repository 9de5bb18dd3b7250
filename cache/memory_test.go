package cache

import (
	"fmt"
	"runtime"
	"testing"
)

// TestMemoryBoundedAfterChurn pushes four times MaxBytes through the cache
// and checks that the heap holds about MaxBytes afterwards: evicted bodies
// must not stay reachable from ristretto's buffers or our index (ristretto
// #320 reports RSS near 2× MaxCost).
func TestMemoryBoundedAfterChurn(t *testing.T) {
	const (
		maxBytes   = 100 * 1000 * 1000
		bodySize   = 1 << 20
		numObjects = 400
		keepNewest = 88        // 95 fit; allow for per-entry overhead
		heapLimit  = 140 << 20 // bytes after GC
	)
	c := newTestCache(t, Config{MaxBytes: maxBytes, MaxObjectBytes: 32 << 20})
	key := func(i int) string { return fmt.Sprintf("http://example.com/blob/%03d", i) }
	for i := range numObjects {
		e := &Entry{Status: 200, Body: make([]byte, bodySize)}
		if err := c.Set(key(i), e); err != nil {
			t.Fatalf("Set(%q) = %v, want nil", key(i), err)
		}
	}

	s := c.Stats()
	if s.Bytes > maxBytes {
		t.Errorf("Stats().Bytes = %d, want <= %d", s.Bytes, maxBytes)
	}
	for i := numObjects - keepNewest; i < numObjects; i++ {
		if _, ok := c.Get(key(i)); !ok {
			t.Errorf("Get(%q) missed; the newest %d objects should all be present", key(i), keepNewest)
		}
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("stats %+v, heap after GC %.1f MiB", s, float64(ms.HeapAlloc)/(1<<20))
	if ms.HeapAlloc > heapLimit {
		t.Errorf("HeapAlloc after GC = %d MiB, want below %d MiB", ms.HeapAlloc>>20, heapLimit>>20)
	}
	runtime.KeepAlive(c)
}
