// Package lru is a bounded map that evicts the least recently used entry,
// for the per-tenant credential and client caches.
package lru

import "container/list"

// Cache is not safe for concurrent use; its owner guards it.
type Cache[K comparable, V any] struct {
	size  int
	order *list.List // front: most recently used
	items map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// New returns a cache of at most size entries (at least one).
func New[K comparable, V any](size int) *Cache[K, V] {
	return &Cache[K, V]{size: max(size, 1), order: list.New(), items: map[K]*list.Element{}}
}

// Get returns the value of k and marks it most recently used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	e, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*entry[K, V]).val, true
}

// Put sets k, evicting the least recently used entries past the bound.
func (c *Cache[K, V]) Put(k K, v V) {
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		e.Value.(*entry[K, V]).val = v
		return
	}
	c.items[k] = c.order.PushFront(&entry[K, V]{key: k, val: v})
	for c.order.Len() > c.size {
		c.Remove(c.order.Back().Value.(*entry[K, V]).key)
	}
}

// Remove drops k.
func (c *Cache[K, V]) Remove(k K) {
	if e, ok := c.items[k]; ok {
		c.order.Remove(e)
		delete(c.items, k)
	}
}

// RemoveIf drops every entry whose key matches.
func (c *Cache[K, V]) RemoveIf(match func(K) bool) {
	for k := range c.items {
		if match(k) {
			c.Remove(k)
		}
	}
}

// Len is the number of entries.
func (c *Cache[K, V]) Len() int { return c.order.Len() }
