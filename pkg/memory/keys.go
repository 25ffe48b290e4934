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

func (s *Store) keys(conversation, requestID string) keys {
	base := s.opts.Prefix + ":{" + conversation + "}:"
	return keys{base + "queue", base + "lease", base + "msgs", base + "meta", base + "req:" + requestID}
}

// HistoryKey is the list that holds a conversation's entries.
func (s *Store) HistoryKey(conversation string) string {
	return s.keys(conversation, "")[kMsgs]
}
