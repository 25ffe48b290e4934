package memory

// keys are the Redis keys of one conversation, in the order the scripts
// take them.
type keys [5]string

const (
	kQueue = iota
	kLease
	kMsgs
	kMeta
	kReq
)

// base starts every key of a conversation: its hash tag puts them, and its
// wake-up channel, on one Cluster slot.
func (s *Store) base(conversation string) string {
	return s.opts.Prefix + ":{" + conversation + "}:"
}

func (s *Store) keys(conversation, requestID string) keys {
	base := s.base(conversation)
	return keys{base + "queue", base + "lease", base + "msgs", base + "meta", base + "req:" + requestID}
}

// wakeChannel is the conversation's sharded wake-up channel.
func (s *Store) wakeChannel(conversation string) string { return s.base(conversation) + "wake" }

// HistoryKey is the list that holds a conversation's entries.
func (s *Store) HistoryKey(conversation string) string {
	return s.keys(conversation, "")[kMsgs]
}
