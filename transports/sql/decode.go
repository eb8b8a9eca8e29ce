package sql

import (
	"encoding/json"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

// MetadataInvalid is set on a message whose metadata column held JSON that
// is not an object (an array, a number, a string): the column is dropped,
// and this key says why, so the message still reaches its handler (and, if
// that fails, the poison queue) instead of stopping its consumer group.
const MetadataInvalid = "sql_metadata_invalid"

// decodeRow turns a messages table row into a message. It never fails, since
// a row a subscription cannot decode would block its consumer group for
// good:
//
//   - A NULL or empty uuid (a row another client inserted) gets the id
//     "<dialect>:<topic>/<offset>" (transports.EnsureUUID), the same on
//     every redelivery.
//   - A NULL payload is an empty one.
//   - Metadata is a JSON object. A value that is not a string is kept as its
//     JSON text (1, true, {"a":1}); null values are dropped. Anything other
//     than an object is dropped and MetadataInvalid explains.
func decodeRow(d dialect, topic string, offset int64, uuid, payload, metadata []byte) *message.Message {
	msg := message.NewMessage(string(uuid), payload)
	if msg.Payload == nil {
		msg.Payload = message.Payload{}
	}
	decodeMetadata(msg, metadata)
	if msg.UUID == "" {
		key := ""
		if topic != "" {
			key = topic + "/" + strconv.FormatInt(offset, 10)
		}
		transports.EnsureUUID(msg, d.String(), key)
	}
	return msg
}

func decodeMetadata(msg *message.Message, raw []byte) {
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	// Fast path: what Watermill and millrace write, an object of strings.
	if err := json.Unmarshal(raw, &msg.Metadata); err == nil {
		return
	}
	var loose map[string]json.RawMessage
	if err := json.Unmarshal(raw, &loose); err != nil {
		msg.Metadata = message.Metadata{MetadataInvalid: "metadata column is not a JSON object: " + err.Error()}
		return
	}
	md := make(message.Metadata, len(loose))
	for k, v := range loose {
		var s string
		switch {
		case string(v) == "null":
			continue
		case json.Unmarshal(v, &s) == nil:
			md[k] = s
		default:
			md[k] = string(v)
		}
	}
	msg.Metadata = md
}
