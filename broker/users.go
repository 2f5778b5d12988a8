package broker

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// usersFile holds the SASL users' SCRAM credentials in the data dir. It holds
// no password: per user and mechanism, the salt, the iteration count and the
// two keys RFC 5802 derives from the salted password (StoredKey, which
// checks a client's proof, and ServerKey, which proves the broker to the
// client), as Kafka stores them. It is written with mode 0600.
const usersFile = "users.json"

// SCRAM iteration bounds, as Kafka's ScramMechanism: fewer than 4096 are
// refused as too weak, more than 16384 as too costly.
const (
	minScramIterations = 4096
	maxScramIterations = 16384
)

// scramCred is one user's credential for one SCRAM mechanism.
type scramCred struct {
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// usersDoc is users.json.
type usersDoc struct {
	Version int                             `json:"version"`
	Users   map[string]map[string]scramCred `json:"users"` // user → mechanism → credential
}

// userStore is the durable set of SCRAM credentials.
type userStore struct {
	dir   string
	mu    sync.RWMutex
	users map[string]map[string]scramCred
	// fakeKey derives the fake salt of unknown users, so that a SCRAM
	// exchange for a user who does not exist looks like one with a
	// wrong password (RFC 5802, section 9).
	fakeKey []byte
}

func scramHash(mech string) func() hash.Hash {
	switch mech {
	case mechScramSHA256:
		return sha256.New
	case mechScramSHA512:
		return sha512.New
	}
	return nil
}

// loadUsers reads users.json from dir (none is no users).
func loadUsers(dir string) (*userStore, error) {
	s := &userStore{dir: dir, users: map[string]map[string]scramCred{}, fakeKey: make([]byte, 32)}
	rand.Read(s.fakeKey)
	path := filepath.Join(dir, usersFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read SASL users: %w", err)
	}
	var doc usersDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("SASL users %s is corrupt: %v", path, err)
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("SASL users %s: version %d is not 1", path, doc.Version)
	}
	for user, creds := range doc.Users {
		for mech, c := range creds {
			if scramHash(mech) == nil || c.Iterations < 1 || len(c.Salt) == 0 || len(c.StoredKey) == 0 || len(c.ServerKey) == 0 {
				return nil, fmt.Errorf("SASL users %s: user %q has an invalid %s credential", path, user, mech)
			}
		}
		if len(creds) > 0 {
			s.users[user] = creds
		}
	}
	return s, nil
}

// saveLocked writes users.json durably; the caller holds mu.
func (s *userStore) saveLocked() error {
	raw, err := json.MarshalIndent(usersDoc{Version: 1, Users: s.users}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomicMode(s.dir, usersFile, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("write SASL users: %w", err)
	}
	return nil
}

// lookup returns user's credential for a SCRAM mechanism.
func (s *userStore) lookup(user, mech string) (scramCred, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.users[user][mech]
	return c, ok
}

// fake is the credential answered for a user without one: a salt derived
// from the user's name (the same on every attempt, as a real user's) and
// random keys no proof can match.
func (s *userStore) fake(user, mech string) scramCred {
	mac := hmac.New(sha256.New, s.fakeKey)
	mac.Write([]byte(mech + "\x00" + user))
	size := scramHash(mech)().Size()
	c := scramCred{Salt: mac.Sum(nil), Iterations: minScramIterations, StoredKey: make([]byte, size), ServerKey: make([]byte, size)}
	rand.Read(c.StoredKey)
	rand.Read(c.ServerKey)
	return c
}

// scramKeys derives StoredKey and ServerKey from a salted password (RFC 5802).
func scramKeys(mech string, salted []byte) (stored, server []byte) {
	h := scramHash(mech)
	clientKey := hmacSum(h, salted, "Client Key")
	sum := h()
	sum.Write(clientKey)
	return sum.Sum(nil), hmacSum(h, salted, "Server Key")
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	mac := hmac.New(h, key)
	mac.Write([]byte(msg))
	return mac.Sum(nil)
}

// saltPassword is Hi(password, salt, iterations) of RFC 5802: PBKDF2 with
// the mechanism's HMAC.
func saltPassword(mech, password string, salt []byte, iterations int) []byte {
	h := scramHash(mech)
	key, _ := pbkdf2.Key(h, password, salt, iterations, h().Size())
	return key
}

// newSalted returns what AlterUserScramCredentials carries for a password:
// a random salt and the salted password.
func newSalted(mech, password string, iterations int) (salt, salted []byte) {
	salt = make([]byte, 32)
	rand.Read(salt)
	return salt, saltPassword(mech, password, salt, iterations)
}

// checkPassword reports whether password is user's, against any of the
// user's SCRAM credentials (SASL/PLAIN is checked against them: the broker
// keeps no password). For an unknown user it costs the same PBKDF2 work.
func (s *userStore) checkPassword(user, password string) bool {
	s.mu.RLock()
	creds := s.users[user]
	s.mu.RUnlock()
	for _, mech := range []string{mechScramSHA512, mechScramSHA256} {
		c, ok := creds[mech]
		if !ok {
			continue
		}
		stored, _ := scramKeys(mech, saltPassword(mech, password, c.Salt, c.Iterations))
		return hmac.Equal(stored, c.StoredKey)
	}
	f := s.fake(user, mechScramSHA512)
	stored, _ := scramKeys(mechScramSHA512, saltPassword(mechScramSHA512, password, f.Salt, f.Iterations))
	return hmac.Equal(stored, f.StoredKey)
}

// errUnacceptable is a credential Kafka would refuse with
// UNACCEPTABLE_CREDENTIAL.
var errUnacceptable = errors.New("unacceptable credential")

// validateUpsert checks an upsertion as Kafka does.
func validateUpsert(user, mech string, iterations int, salt, salted []byte) error {
	switch {
	case user == "":
		return fmt.Errorf("%w: the user name is empty", errUnacceptable)
	case scramHash(mech) == nil:
		return fmt.Errorf("unknown SCRAM mechanism %q", mech)
	case iterations < minScramIterations:
		return fmt.Errorf("%w: %d iterations is below the minimum %d", errUnacceptable, iterations, minScramIterations)
	case iterations > maxScramIterations:
		return fmt.Errorf("%w: %d iterations is above the maximum %d", errUnacceptable, iterations, maxScramIterations)
	case len(salt) == 0:
		return fmt.Errorf("%w: the salt is empty", errUnacceptable)
	case len(salted) == 0:
		return fmt.Errorf("%w: the salted password is empty", errUnacceptable)
	}
	return nil
}

// credChange is one upsertion (salted set) or deletion.
type credChange struct {
	user, mech string
	iterations int
	salt       []byte
	salted     []byte // nil for a deletion
}

// apply applies the changes together and writes them durably; on a write
// error none is applied.
func (s *userStore) apply(changes []credChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]map[string]scramCred, len(s.users))
	for u, creds := range s.users {
		next[u] = make(map[string]scramCred, len(creds))
		for m, c := range creds {
			next[u][m] = c
		}
	}
	for _, ch := range changes {
		if ch.salted == nil {
			delete(next[ch.user], ch.mech)
			if len(next[ch.user]) == 0 {
				delete(next, ch.user)
			}
			continue
		}
		stored, server := scramKeys(ch.mech, ch.salted)
		if next[ch.user] == nil {
			next[ch.user] = map[string]scramCred{}
		}
		next[ch.user][ch.mech] = scramCred{Salt: append([]byte(nil), ch.salt...), Iterations: ch.iterations, StoredKey: stored, ServerKey: server}
	}
	old := s.users
	s.users = next
	if err := s.saveLocked(); err != nil {
		s.users = old
		return err
	}
	return nil
}

// has reports whether user has a credential for mech.
func (s *userStore) has(user, mech string) bool {
	_, ok := s.lookup(user, mech)
	return ok
}

// userInfo is one user's mechanisms and iterations.
type userInfo struct {
	Name  string
	Creds []credInfo
}

type credInfo struct {
	Mechanism  string
	Iterations int
}

// list returns the users (all if names is empty) with their mechanisms,
// sorted; unknown names are left out.
func (s *userStore) list(names ...string) []userInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(names) == 0 {
		for u := range s.users {
			names = append(names, u)
		}
	}
	var out []userInfo
	for _, u := range names {
		creds, ok := s.users[u]
		if !ok {
			continue
		}
		info := userInfo{Name: u}
		for m, c := range creds {
			info.Creds = append(info.Creds, credInfo{m, c.Iterations})
		}
		sort.Slice(info.Creds, func(i, j int) bool { return info.Creds[i].Mechanism < info.Creds[j].Mechanism })
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// errNotFound is the deletion of a credential that does not exist.
var errNotFound = errors.New("Attempt to delete a user credential that does not exist")
