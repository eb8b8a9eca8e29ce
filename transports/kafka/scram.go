package kafka

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
)

// scramClient is a SCRAM client (RFC 5802, no channel binding) for Sarama's
// SASL/SCRAM. Sarama ships only the interface; the usual implementation
// (xdg-go/scram) is not a dependency of millrace, and the exchange is short,
// so it is written here on the standard library.
type scramClient struct {
	newHash func() hash.Hash

	user, password string
	nonce          string // client nonce
	firstBare      string // client-first-message-bare
	serverSig      []byte // expected ServerSignature
	step           int
	done           bool
}

var (
	sha256Hash = sha256.New
	sha512Hash = sha512.New
)

func newSCRAMClient(h func() hash.Hash) *scramClient { return &scramClient{newHash: h} }

func (c *scramClient) Begin(user, password, _ string) error {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	c.user, c.password = user, password
	c.nonce = base64.RawStdEncoding.EncodeToString(b)
	c.step, c.done = 0, false
	return nil
}

func (c *scramClient) Done() bool { return c.done }

func (c *scramClient) Step(challenge string) (string, error) {
	c.step++
	switch c.step {
	case 1:
		name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user)
		c.firstBare = "n=" + name + ",r=" + c.nonce
		return "n,," + c.firstBare, nil
	case 2:
		return c.final(challenge)
	case 3:
		c.done = true
		attrs := scramAttrs(challenge)
		if e, ok := attrs["e"]; ok {
			return "", errors.New("scram: server rejected authentication: " + e)
		}
		v, err := base64.StdEncoding.DecodeString(attrs["v"])
		if err != nil || subtle.ConstantTimeCompare(v, c.serverSig) != 1 {
			return "", errors.New("scram: server signature does not match")
		}
		return "", nil
	default:
		return "", errors.New("scram: unexpected step")
	}
}

// final answers the server-first-message with the client proof.
func (c *scramClient) final(serverFirst string) (string, error) {
	attrs := scramAttrs(serverFirst)
	nonce, saltB64, iterStr := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return "", errors.New("scram: server nonce does not extend the client nonce")
	}
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	if err != nil {
		return "", errors.New("scram: bad salt from server")
	}
	iter, err := strconv.Atoi(iterStr)
	if err != nil || iter < 1 {
		return "", errors.New("scram: bad iteration count from server")
	}
	salted, err := pbkdf2.Key(c.newHash, c.password, salt, iter, c.newHash().Size())
	if err != nil {
		return "", errors.New("scram: derive key: " + err.Error())
	}
	clientKey := c.hmac(salted, "Client Key")
	h := c.newHash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)

	withoutProof := "c=biws,r=" + nonce // biws = base64("n,,")
	authMessage := c.firstBare + "," + serverFirst + "," + withoutProof
	proof := c.hmac(storedKey, authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	c.serverSig = c.hmac(c.hmac(salted, "Server Key"), authMessage)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

func (c *scramClient) hmac(key []byte, msg string) []byte {
	m := hmac.New(c.newHash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// scramAttrs parses "a=x,b=y" into a map.
func scramAttrs(s string) map[string]string {
	out := make(map[string]string, 4)
	for part := range strings.SplitSeq(s, ",") {
		if k, v, ok := strings.Cut(part, "="); ok {
			out[k] = v
		}
	}
	return out
}
