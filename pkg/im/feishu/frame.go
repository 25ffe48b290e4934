package feishu

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Frame is the long connection's pbbp2.Frame, the protobuf message every
// WebSocket binary message carries:
//
//	message Header { required string key = 1; required string value = 2; }
//	message Frame {
//	  required uint64 SeqID = 1;  required uint64 LogID = 2;
//	  required int32 service = 3; required int32 method = 4;
//	  repeated Header headers = 5;
//	  optional string payload_encoding = 6; optional string payload_type = 7;
//	  optional bytes payload = 8; optional string LogIDNew = 9;
//	}
//
// It is encoded with protowire (the wire format, no generated code).
type Frame struct {
	SeqID, LogID    uint64
	Service, Method int32
	Headers         [][2]string
	PayloadEncoding string
	PayloadType     string
	Payload         []byte
	LogIDNew        string
}

// Frame methods.
const (
	MethodControl = 0 // ping, pong
	MethodData    = 1 // event, card
)

// Header returns the value of header k.
func (f *Frame) Header(k string) string {
	for _, h := range f.Headers {
		if h[0] == k {
			return h[1]
		}
	}
	return ""
}

// Marshal encodes the frame.
func (f *Frame) Marshal() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, f.SeqID)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, f.LogID)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(f.Service)))
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(f.Method)))
	for _, h := range f.Headers {
		var hb []byte
		hb = protowire.AppendTag(hb, 1, protowire.BytesType)
		hb = protowire.AppendString(hb, h[0])
		hb = protowire.AppendTag(hb, 2, protowire.BytesType)
		hb = protowire.AppendString(hb, h[1])
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, hb)
	}
	for _, s := range []struct {
		n protowire.Number
		v string
	}{{6, f.PayloadEncoding}, {7, f.PayloadType}} {
		if s.v != "" {
			b = protowire.AppendTag(b, s.n, protowire.BytesType)
			b = protowire.AppendString(b, s.v)
		}
	}
	if f.Payload != nil {
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendBytes(b, f.Payload)
	}
	if f.LogIDNew != "" {
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendString(b, f.LogIDNew)
	}
	return b
}

// UnmarshalFrame decodes a frame; unknown fields are skipped.
func UnmarshalFrame(b []byte) (*Frame, error) {
	f := &Frame{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("feishu: frame: %w", protowire.ParseError(n))
		}
		if !num.IsValid() { // ConsumeTag lets numbers past 2^29-1 through; protobuf refuses them
			return nil, fmt.Errorf("feishu: frame: field number %d out of range", num)
		}
		b = b[n:]
		// Every field's value is measured once; the fields the frame has
		// are then read from it (a value that parsed has no error left).
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, fmt.Errorf("feishu: frame field %d: %w", num, protowire.ParseError(n))
		}
		val := b[:n]
		b = b[n:]
		switch {
		case typ == protowire.VarintType && num <= 4:
			v, _ := protowire.ConsumeVarint(val)
			switch num {
			case 1:
				f.SeqID = v
			case 2:
				f.LogID = v
			case 3:
				f.Service = int32(v)
			case 4:
				f.Method = int32(v)
			}
		case typ == protowire.BytesType && num >= 5 && num <= 9:
			v, _ := protowire.ConsumeBytes(val)
			switch num {
			case 5:
				h, err := unmarshalHeader(v)
				if err != nil {
					return nil, err
				}
				f.Headers = append(f.Headers, h)
			case 6:
				f.PayloadEncoding = string(v)
			case 7:
				f.PayloadType = string(v)
			case 8:
				f.Payload = append([]byte{}, v...)
			case 9:
				f.LogIDNew = string(v)
			}
		}
	}
	return f, nil
}

func unmarshalHeader(b []byte) ([2]string, error) {
	var h [2]string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || !num.IsValid() {
			return h, errors.New("feishu: frame header: bad tag")
		}
		b = b[n:]
		if typ != protowire.BytesType || (num != 1 && num != 2) {
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return h, errors.New("feishu: frame header: bad field")
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return h, errors.New("feishu: frame header: bad string")
		}
		b = b[n:]
		h[num-1] = string(v)
	}
	return h, nil
}
