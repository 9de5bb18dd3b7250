package cache

import "errors"

// Config configures a Cache.
type Config struct {
	// MaxBytes bounds the total cost of stored entries. Required.
	MaxBytes int64
	// MaxObjectBytes bounds the cost of one entry; zero means MaxBytes/4.
	MaxObjectBytes int64
}

// Stats are counters and gauges of a Cache.
type Stats struct {
	Objects   int64
	Bytes     int64
	Evictions uint64
}

// Cache is a byte-bounded LRU store of Entries. Safe for concurrent use.
type Cache struct{}

// New creates a Cache.
func New(cfg Config) (*Cache, error) {
	if cfg.MaxBytes <= 0 {
		return nil, errors.New("cache: MaxBytes must be positive")
	}
	return &Cache{}, nil
}

// Get returns the entry stored under key and marks it recently used.
func (c *Cache) Get(key string) (*Entry, bool) { return nil, false }

// Set stores e under key, evicting least recently used entries to make
// room. It is synchronous: a Get after it returns sees e. It returns false
// when e was not stored (larger than MaxObjectBytes).
func (c *Cache) Set(key string, e *Entry) bool { return false }

// Delete removes key.
func (c *Cache) Delete(key string) {}

// Stats returns current counters.
func (c *Cache) Stats() Stats { return Stats{} }

// Close stops the cache's goroutines.
func (c *Cache) Close() {}
