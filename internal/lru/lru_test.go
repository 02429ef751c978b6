package lru

import "testing"

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := New[string, int](2)
	c.Put("a", 1)
	c.Put("b", 2)
	if v, ok := c.Get("a"); !ok || v != 1 { // a is now the most recent
		t.Fatalf("Get(a) = %d, %v", v, ok)
	}
	c.Put("c", 3) // evicts b
	if _, ok := c.Get("b"); ok {
		t.Fatal("b survived eviction")
	}
	c.Put("a", 10)
	if v, _ := c.Get("a"); v != 10 || c.Len() != 2 {
		t.Fatalf("update: a = %d, len %d", v, c.Len())
	}
	c.RemoveIf(func(k string) bool { return k == "a" })
	c.Remove("missing")
	if _, ok := c.Get("a"); ok || c.Len() != 1 {
		t.Fatalf("RemoveIf left a, len %d", c.Len())
	}
	if z := New[int, int](0); z.size != 1 {
		t.Fatalf("size floor = %d", z.size)
	}
}
