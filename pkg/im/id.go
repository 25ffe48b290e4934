package im

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
)

// IntID reads an id that the platform defines as an integer (Telegram's
// update_id and chat ids, OneBot's self_id, message_id, user_id and
// group_id) in any JSON spelling of that integer — 77001, 77001.0 and
// 7.7001e4 are one id — and returns it in its one canonical form, the
// decimal digits. A fraction or a number beyond int64 is refused, so two
// events never share an id by rounding.
func IntID(n json.Number) (string, error) {
	if n == "" {
		return "", nil
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return strconv.FormatInt(i, 10), nil
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok || !r.IsInt() || !r.Num().IsInt64() {
		return "", fmt.Errorf("%q is not an integer id", string(n))
	}
	return r.Num().String(), nil
}

// DecodeNumbers decodes the JSON value body starts with into v, keeping
// its numbers as json.Number (for IntID, or a map[string]any's values).
func DecodeNumbers(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return dec.Decode(v)
}
