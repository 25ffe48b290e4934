// Package keyspace owns the one default every package's Redis keys share:
// the prefix they start with (redis.key_prefix, "bf"). Each package
// documents its own key layout under that prefix; the packages that take a
// Prefix option default it to DefaultPrefix.
package keyspace

// DefaultPrefix starts every key when redis.key_prefix names none.
const DefaultPrefix = "bf"
