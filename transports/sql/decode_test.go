package sql

import (
	"maps"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

func TestDecodeRow(t *testing.T) {
	tests := []struct {
		name     string
		uuid     []byte
		payload  []byte
		metadata []byte
		wantID   string
		wantMD   message.Metadata
	}{
		{"watermill row", []byte("id-1"), []byte("p"), []byte(`{"a":"b"}`), "id-1", message.Metadata{"a": "b"}},
		{"no uuid", nil, []byte("p"), nil, "mysql:orders/7", message.Metadata{}},
		{"empty uuid", []byte{}, nil, []byte("null"), "mysql:orders/7", message.Metadata{}},
		{"loose values", []byte("x"), nil, []byte(`{"n":1,"f":false,"o":{"k":[1,"2"]},"z":null,"s":"t"}`), "x",
			message.Metadata{"n": "1", "f": "false", "o": `{"k":[1,"2"]}`, "s": "t"}},
		{"not an object", []byte("x"), nil, []byte(`[1,2]`), "x",
			message.Metadata{MetadataInvalid: "metadata column is not a JSON object: json: cannot unmarshal array into Go value of type map[string]json.RawMessage"}},
		{"not JSON", []byte("x"), nil, []byte(`{`), "x",
			message.Metadata{MetadataInvalid: "metadata column is not a JSON object: unexpected end of JSON input"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := decodeRow(mysqlDialect, "orders", 7, tt.uuid, tt.payload, tt.metadata)
			if m.UUID != tt.wantID {
				t.Errorf("UUID = %q, want %q", m.UUID, tt.wantID)
			}
			if m.Payload == nil {
				t.Error("payload is nil")
			}
			if !maps.Equal(m.Metadata, tt.wantMD) {
				t.Errorf("metadata = %v, want %v", m.Metadata, tt.wantMD)
			}
		})
	}
}
