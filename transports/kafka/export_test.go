package kafka

// FastGroups makes consumer groups heartbeat every 100ms and give up on a
// rebalance after 3s, so tests that add and remove members run quickly.
func FastGroups(c *Config) { c.fastGroups = true }

// Unmarshal is the subscriber's record-to-message conversion.
var Unmarshal = marshaler{}.Unmarshal
