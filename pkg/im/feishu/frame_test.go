package feishu

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// pbbp2 builds Feishu's pbbp2.Frame descriptor, so that real protobuf
// encodes and decodes what frame.go does.
func pbbp2(t testing.TB) protoreflect.MessageDescriptor {
	req, opt := descriptorpb.FieldDescriptorProto_LABEL_REQUIRED.Enum(), descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	typ := func(t descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto_Type {
		return t.Enum()
	}
	field := func(name string, n int32, l *descriptorpb.FieldDescriptorProto_Label, ty *descriptorpb.FieldDescriptorProto_Type, msg string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Label: l, Type: ty}
		if msg != "" {
			f.TypeName = proto.String(msg)
		}
		return f
	}
	str, u64, i32, byt := descriptorpb.FieldDescriptorProto_TYPE_STRING, descriptorpb.FieldDescriptorProto_TYPE_UINT64,
		descriptorpb.FieldDescriptorProto_TYPE_INT32, descriptorpb.FieldDescriptorProto_TYPE_BYTES
	fd := &descriptorpb.FileDescriptorProto{
		Name: proto.String("pbbp2.proto"), Package: proto.String("pbbp2"), Syntax: proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Header"), Field: []*descriptorpb.FieldDescriptorProto{
				field("key", 1, req, typ(str), ""), field("value", 2, req, typ(str), "")}},
			{Name: proto.String("Frame"), Field: []*descriptorpb.FieldDescriptorProto{
				field("SeqID", 1, req, typ(u64), ""), field("LogID", 2, req, typ(u64), ""),
				field("service", 3, req, typ(i32), ""), field("method", 4, req, typ(i32), ""),
				field("headers", 5, rep, typ(descriptorpb.FieldDescriptorProto_TYPE_MESSAGE), ".pbbp2.Header"),
				field("payload_encoding", 6, opt, typ(str), ""), field("payload_type", 7, opt, typ(str), ""),
				field("payload", 8, opt, typ(byt), ""), field("LogIDNew", 9, opt, typ(str), "")}},
		},
	}
	file, err := protodesc.NewFile(fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	return file.Messages().ByName("Frame")
}

func TestFrameMatchesProtobuf(t *testing.T) {
	md := pbbp2(t)
	f := Frame{SeqID: 7, LogID: 1 << 40, Service: 33, Method: MethodData, PayloadType: "json", LogIDNew: "l-1",
		Headers: [][2]string{{"type", "event"}, {"message_id", "m1"}, {"sum", "2"}, {"seq", "1"}}, Payload: []byte(`{"a":1}`)}
	m := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(f.Marshal(), m); err != nil {
		t.Fatalf("protobuf cannot read our frame: %v", err)
	}
	get := func(name string) protoreflect.Value { return m.Get(md.Fields().ByName(protoreflect.Name(name))) }
	hs := get("headers").List()
	if get("SeqID").Uint() != 7 || get("LogID").Uint() != 1<<40 || get("service").Int() != 33 || get("method").Int() != 1 ||
		string(get("payload").Bytes()) != `{"a":1}` || get("LogIDNew").String() != "l-1" || hs.Len() != 4 ||
		hs.Get(2).Message().Get(md.Fields().ByName("headers").Message().Fields().ByName("value")).String() != "2" {
		t.Fatalf("protobuf read %v", m)
	}
	raw, err := proto.Marshal(m) // and back: what protobuf writes, we read
	if err != nil {
		t.Fatal(err)
	}
	g, err := UnmarshalFrame(raw)
	if err != nil || g.SeqID != 7 || g.Service != 33 || g.Header("seq") != "1" || string(g.Payload) != `{"a":1}` || g.PayloadType != "json" {
		t.Fatalf("%+v %v", g, err)
	}
	if _, err := UnmarshalFrame([]byte{0x0a, 0xff}); err == nil {
		t.Fatal("a truncated frame decoded")
	}
}
