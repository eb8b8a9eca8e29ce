package kafka

import "github.com/ThreeDotsLabs/watermill"

// FastGroups makes consumer groups heartbeat every 100ms and give up on a
// rebalance after 3s, so tests that add and remove members run quickly.
func FastGroups(c *Config) { c.fastGroups = true }

// Unmarshal is the subscriber's record-to-message conversion.
var Unmarshal = marshaler{}.Unmarshal

// QuietLogger is the logger the transport gives watermill-kafka, around l.
func QuietLogger(l watermill.LoggerAdapter) watermill.LoggerAdapter { return quietLogger{l} }
