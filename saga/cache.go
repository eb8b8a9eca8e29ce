package saga

import "sync"

// cacheSize bounds the instances a manager keeps in memory.
const cacheSize = 10000

// cache keeps the instances a manager stored last, so that the next
// transition of an instance need not load it first: it is saved at the
// cached version, and a save refused because another process (or
// transition) moved it since drops the entry and loads it anew. Finished
// instances leave it; beyond cacheSize the oldest entry goes.
type cache struct {
	mu    sync.Mutex
	byKey map[string]*Instance
	order []string // insertion order, for eviction
}

// get returns a copy of the cached instance id, or nil.
func (c *cache) get(id string) *Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	if in, ok := c.byKey[id]; ok {
		return in.clone()
	}
	return nil
}

// put caches a copy of in, or drops it when it ended.
func (c *cache) put(in *Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if in.Status.Final() {
		delete(c.byKey, in.ID)
		return
	}
	if c.byKey == nil {
		c.byKey = map[string]*Instance{}
	}
	if _, ok := c.byKey[in.ID]; !ok {
		c.order = append(c.order, in.ID)
	}
	c.byKey[in.ID] = in.clone()
	for len(c.byKey) > cacheSize && len(c.order) > 0 {
		delete(c.byKey, c.order[0])
		c.order = c.order[1:]
	}
	if len(c.order) > 2*cacheSize {
		kept := c.order[:0]
		for _, id := range c.order {
			if _, ok := c.byKey[id]; ok {
				kept = append(kept, id)
			}
		}
		c.order = kept
	}
}

// drop forgets id.
func (c *cache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byKey, id)
}
