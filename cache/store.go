package cache

import (
	"container/list"
	"errors"
	"fmt"
	"sync"

	"github.com/dgraph-io/ristretto/v2"
)

// Config configures a Cache.
type Config struct {
	// MaxBytes bounds the total cost (Entry.Cost) of stored entries.
	// Required.
	MaxBytes int64
	// MaxObjectBytes bounds the body of one entry (len(Entry.Body)), so
	// that a response of exactly this length is stored: it is the
	// operator's maxObjectSize, the largest response body stored, and the
	// proxy decides from a response's Content-Length alone, before its
	// headers are final, whether it will be stored. Zero means MaxBytes/4;
	// a value above MaxBytes acts as MaxBytes. The whole entry, headers
	// included (Entry.Cost), must also fit in MaxBytes.
	MaxObjectBytes int64
	// OnEvict, if not nil, is called for every entry the cache drops to make
	// room for another (not for Delete, nor for a key replaced by Set). It
	// runs synchronously inside the Set that caused the eviction, after the
	// cache's locks are released, so it may call the Cache; keep it cheap.
	OnEvict func(key string, cost int64)
}

// Errors Set returns for an entry it did not store.
var (
	// ErrTooLarge: the body is above MaxObjectBytes, or the whole entry
	// above MaxBytes.
	ErrTooLarge = errors.New("cache: entry too large")
	// ErrClosed: the cache is closed.
	ErrClosed = errors.New("cache: closed")
	// ErrDropped: ristretto did not keep the entry.
	ErrDropped = errors.New("cache: entry dropped by the store")
)

// Stats are counters and gauges of a Cache.
type Stats struct {
	// Objects is the number of stored entries.
	Objects int64
	// Bytes is the sum of the costs of the stored entries.
	Bytes int64
	// Reserved is the sum of the reservations of fills under way.
	Reserved int64
	// Evictions counts entries dropped to make room (see Config.OnEvict).
	Evictions uint64
}

// Cache is a byte-bounded LRU store of Entries.
//
// The values live in a ristretto cache, but admission and eviction are
// decided here: ristretto's TinyLFU admission can refuse a new object when
// the cache is full (FIELD-NOTES 2.3, 2.5 #106), which would break "fetched
// once, then a hit" for a proxy whose traffic is mostly scans of distinct
// URLs. So the Cache keeps its own LRU index of keys and costs, evicts from it
// until the new entry fits, and only then hands the entry to ristretto,
// which therefore always finds room and admits it unconditionally.
//
// All methods are safe for concurrent use, Close included. Writers (Set,
// Delete, Close) are serialised; Get runs in parallel with them and with
// other Gets, and holds the index lock only to move the key to the front.
type Cache struct {
	maxBytes, maxObject int64
	onEvict             func(key string, cost int64)

	// rc holds the entries. Its methods are used only while holding
	// lifeMu for reading (Get) or setMu (writers), because ristretto's own
	// Close is not safe against concurrent calls.
	rc *ristretto.Cache[string, *Entry]

	// lifeMu protects rc against Close: Get holds it for reading around
	// rc.Get, Close holds it for writing around rc.Close.
	lifeMu sync.RWMutex

	// setMu serialises writers (Set, Delete, Close, and Get's repair of a
	// stale index entry). Holding it across a whole Set keeps ristretto's
	// state and the index in step: nothing else changes ristretto while a
	// Set evicts, stores and waits. Lock order: setMu, then lifeMu, then mu.
	setMu sync.Mutex
	// closed is set by Close; protected by setMu.
	closed bool

	// mu protects the index fields below. Critical sections under mu never
	// call into ristretto or user code.
	mu        sync.Mutex
	ll        *list.List               // of *lruItem, most recently used at the front
	items     map[string]*list.Element // key → element of ll
	used      int64                    // sum of lruItem.cost over ll
	reserved  int64                    // bytes set aside by Reserve for entries being filled
	evictions uint64

	// Invariant, between writer steps: every key in items is stored in rc
	// with the cost recorded here, and rc's own cost total equals used.
}

// lruItem is the value of an element of Cache.ll.
type lruItem struct {
	key  string
	cost int64
}

// New creates a Cache. Call Close to stop its goroutines.
func New(cfg Config) (*Cache, error) {
	if cfg.MaxBytes <= 0 {
		return nil, errors.New("cache: MaxBytes must be positive")
	}
	if cfg.MaxObjectBytes < 0 {
		return nil, errors.New("cache: MaxObjectBytes must not be negative")
	}
	maxObject := cfg.MaxObjectBytes
	if maxObject == 0 {
		maxObject = cfg.MaxBytes / 4
	}
	maxObject = min(maxObject, cfg.MaxBytes)

	// Counters feed only TinyLFU, which our eviction keeps from ever
	// deciding anything, so size them modestly: about 10 per expected item
	// at 20 KiB average (FIELD-NOTES 2.6 step 8), within [1e4, 1e6].
	counters := min(max(cfg.MaxBytes/2048, 1e4), 1e6)
	rc, err := ristretto.NewCache(&ristretto.Config[string, *Entry]{
		NumCounters: counters,
		MaxCost:     cfg.MaxBytes,
		BufferItems: 64,
		// Our costs are exact and our index must match ristretto's total
		// byte for byte; the 56 bytes of internal cost would also make an
		// entry of exactly MaxBytes unstorable (FIELD-NOTES 2.4).
		IgnoreInternalCost: true,
		// Metrics stay off: Stats comes from the index, and ristretto's
		// metrics add atomic counters to every Get.
	})
	if err != nil {
		return nil, err
	}
	return &Cache{
		maxBytes:  cfg.MaxBytes,
		maxObject: maxObject,
		onEvict:   cfg.OnEvict,
		rc:        rc,
		ll:        list.New(),
		items:     make(map[string]*list.Element),
	}, nil
}

// Get returns the entry stored under key and marks it recently used.
// The returned Entry must not be modified.
func (c *Cache) Get(key string) (*Entry, bool) {
	c.lifeMu.RLock()
	e, ok := c.rc.Get(key)
	c.lifeMu.RUnlock()

	c.mu.Lock()
	el, indexed := c.items[key]
	if ok && indexed {
		c.ll.MoveToFront(el)
	}
	c.mu.Unlock()

	switch {
	case ok:
		// If the key is not indexed, a Set of it is finishing or an
		// eviction of it is under way; either way the entry is valid.
		return e, true
	case !indexed:
		return nil, false
	default:
		return c.getSlow(key)
	}
}

// getSlow handles a key that the index lists but ristretto did not return.
// Usually a Set of the key completed between the two lookups; otherwise
// ristretto lost it, and the index must forget it too so that its byte
// count stays true.
func (c *Cache) getSlow(key string) (*Entry, bool) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	if c.closed {
		return nil, false
	}
	// No writer is in flight, so ristretto and the index are in step
	// except for a real loss.
	e, ok := c.rc.Get(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	el, indexed := c.items[key]
	switch {
	case ok && indexed:
		c.ll.MoveToFront(el)
	case !ok && indexed:
		c.removeLocked(el)
	}
	return e, ok
}

// Set stores e under key, replacing any entry already there and evicting
// least recently used entries to make room. It is synchronous: a Get after
// it returns sees e (until a later Set, Delete or eviction). It returns an
// error when e was not stored, saying why: ErrTooLarge when its body is
// above MaxObjectBytes or its cost above MaxBytes (nothing is evicted
// then), ErrClosed, or ErrDropped when ristretto refused it. e must not be
// modified after Set.
func (c *Cache) Set(key string, e *Entry) error {
	if e == nil {
		return errors.New("cache: nil entry")
	}
	if n := int64(len(e.Body)); n > c.maxObject {
		return fmt.Errorf("%w: body of %d bytes, above the %d-byte object limit", ErrTooLarge, n, c.maxObject)
	}
	cost := e.Cost(key)
	if cost > c.maxBytes {
		return fmt.Errorf("%w: %d bytes with its headers, above the %d-byte cache", ErrTooLarge, cost, c.maxBytes)
	}

	var victims []lruItem
	err := c.set(key, e, cost, &victims)
	if c.onEvict != nil {
		for _, v := range victims {
			c.onEvict(v.key, v.cost)
		}
	}
	return err
}

// MaxObjectBytes is the largest body Set stores (Config.MaxObjectBytes
// after defaults and capping).
func (c *Cache) MaxObjectBytes() int64 { return c.maxObject }

// set does Set's work under setMu and appends evicted entries to victims,
// for the caller to report once the locks are released.
func (c *Cache) set(key string, e *Entry, cost int64, victims *[]lruItem) error {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	if c.closed {
		return ErrClosed
	}

	// Make room in the index first: the replaced entry's old cost is freed
	// by the replacement itself, so it is never a victim.
	c.mu.Lock()
	need := c.used + c.reserved + cost
	if el, ok := c.items[key]; ok {
		need -= el.Value.(*lruItem).cost
	}
	c.evictLocked(need, key, victims)
	c.mu.Unlock()

	// Then in ristretto. Del and Set share one FIFO buffer, so when the
	// Set is applied the victims' cost is already released and the policy
	// takes its "room left" path instead of asking TinyLFU. Wait makes the
	// Set applied before we return, so the next Get hits.
	for _, v := range *victims {
		c.rc.Del(v.key)
	}
	c.rc.Set(key, e, cost)
	c.rc.Wait()

	// Check rather than trust: ristretto's Set may drop the item or the
	// policy may reject it (reporting neither to us). The index must never
	// list a key ristretto lacks.
	got, ok := c.rc.Get(key)
	stored := ok && got == e
	if ok && !stored {
		// Some other value survived under key (a failed replacement);
		// drop it rather than serve what the caller meant to replace.
		c.rc.Del(key)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	el, indexed := c.items[key]
	switch {
	case stored && indexed:
		it := el.Value.(*lruItem)
		c.used += cost - it.cost
		it.cost = cost
		c.ll.MoveToFront(el)
	case stored:
		c.items[key] = c.ll.PushFront(&lruItem{key: key, cost: cost})
		c.used += cost
	case indexed:
		c.removeLocked(el)
	}
	if !stored {
		return ErrDropped
	}
	return nil
}

// evictLocked drops least recently used entries other than keep until need
// bytes (need counts what is stored) fit in MaxBytes, appending them to
// victims. The caller holds setMu and mu.
func (c *Cache) evictLocked(need int64, keep string, victims *[]lruItem) {
	for el := c.ll.Back(); need > c.maxBytes && el != nil; {
		prev := el.Prev()
		if it := el.Value.(*lruItem); it.key != keep {
			*victims = append(*victims, *it)
			need -= it.cost
			c.removeLocked(el)
			c.evictions++
		}
		el = prev
	}
}

// Reserve sets aside n bytes for an entry still being filled, evicting least
// recently used entries as Set would. Bytes in flight then count against
// MaxBytes like stored ones, so the memory held by the cache and its fills
// stays near MaxBytes instead of MaxBytes plus every fill under way (the
// memory limit is set from MaxBytes). An entry reserved for but never stored
// (the fill failed) has cost the entries evicted for it, as it would have
// had it been stored. Call release exactly once, before the Set of the
// finished entry or when giving up.
func (c *Cache) Reserve(n int64) (release func()) {
	if n <= 0 {
		return func() {}
	}
	var victims []lruItem
	c.setMu.Lock()
	c.mu.Lock()
	c.reserved += n
	c.evictLocked(c.used+c.reserved, "", &victims)
	c.mu.Unlock()
	if !c.closed {
		for _, v := range victims {
			c.rc.Del(v.key)
		}
	}
	c.setMu.Unlock()
	if c.onEvict != nil {
		for _, v := range victims {
			c.onEvict(v.key, v.cost)
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.reserved -= n
			c.mu.Unlock()
		})
	}
}

// Delete removes key. Deleting an absent key does nothing.
func (c *Cache) Delete(key string) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	if c.closed {
		return
	}
	c.mu.Lock()
	if el, ok := c.items[key]; ok {
		c.removeLocked(el)
	}
	c.mu.Unlock()
	// Del removes the value at once; its policy update reaches ristretto
	// through the same buffer ahead of any later Set, so no Wait is needed.
	c.rc.Del(key)
}

// removeLocked drops el from the index. The caller holds mu.
func (c *Cache) removeLocked(el *list.Element) {
	it := c.ll.Remove(el).(*lruItem)
	delete(c.items, it.key)
	c.used -= it.cost
}

// Stats returns current counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Objects:   int64(len(c.items)),
		Bytes:     c.used,
		Reserved:  c.reserved,
		Evictions: c.evictions,
	}
}

// Close stops the cache's goroutines and drops every entry. Afterwards Get
// misses, Set returns false and Delete does nothing. Close may be called
// more than once.
func (c *Cache) Close() {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	if c.closed {
		return
	}
	c.closed = true

	c.lifeMu.Lock()
	c.rc.Close()
	c.lifeMu.Unlock()

	c.mu.Lock()
	c.ll.Init()
	clear(c.items)
	c.used = 0
	c.mu.Unlock()
}
