package mongots

// AppendBSON appends to dst the BSON document Write stores for d (see the
// package documentation for its shape; Write adds the _id), or returns an
// error wrapping ErrInvalidDoc for a Doc that Write refuses before
// sending. On error dst is returned as it was given. It lets a caller
// measure or check the encoding without a server.
func (d *Doc) AppendBSON(dst []byte) ([]byte, error) {
	n := len(dst)
	out, err := appendDoc(dst, d)
	if err != nil {
		return out[:n], err
	}
	return out, nil
}
