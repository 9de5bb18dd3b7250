// Package cache holds stageproxy's bounded in-memory object store and the
// HTTP caching rules of RFC 9111 for a shared cache.
//
// The store (store.go) is built on ristretto/v2 but behaves as a byte-bounded
// LRU: objects are admitted whenever they fit, evicting the least recently
// used ones first, so "fetched once, then a hit" holds while the cache has
// room. The rules (rules.go) are pure functions of headers and a clock value;
// they never read the clock themselves.
package cache
