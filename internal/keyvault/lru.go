package keyvault

import "container/list"

// lru is a bounded map that evicts the least recently used entry. It is not
// safe for concurrent use; the Reader guards it.
type lru[K comparable, V any] struct {
	size  int
	order *list.List // front: most recently used; elements hold K
	items map[K]*list.Element
	vals  map[K]V
}

func newLRU[K comparable, V any](size int) *lru[K, V] {
	return &lru[K, V]{size: size, order: list.New(), items: map[K]*list.Element{}, vals: map[K]V{}}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	e, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	return c.vals[k], true
}

func (c *lru[K, V]) put(k K, v V) {
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		c.vals[k] = v
		return
	}
	for c.order.Len() >= c.size {
		c.remove(c.order.Back().Value.(K))
	}
	c.items[k] = c.order.PushFront(k)
	c.vals[k] = v
}

func (c *lru[K, V]) remove(k K) {
	if e, ok := c.items[k]; ok {
		c.order.Remove(e)
		delete(c.items, k)
		delete(c.vals, k)
	}
}

func (c *lru[K, V]) len() int { return c.order.Len() }

func (c *lru[K, V]) removeIf(match func(K) bool) {
	for k := range c.items {
		if match(k) {
			c.remove(k)
		}
	}
}
