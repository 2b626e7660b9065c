package macsec

import (
	"crypto/cipher"
	"reflect"
	"sync/atomic"
	"time"
	"unsafe"
)

// A retired SA's key material is wiped: the SAK copy at once, and the GCM
// object (the AES key schedule and the GHASH key, as secret as the SAK,
// which Go's crypto offers no way to erase) once no datapath worker can
// still be inside a call that loaded the SA. Workers say so through a
// Reader: Enter before handling a batch of frames, Leave after. Callers
// that use the SecY from one goroutine, or never retire SAs while others
// run, need no Reader.

// Reader marks one goroutine's use of the SecY's SAs.
type Reader struct {
	state atomic.Uint64 // odd while inside
	_     [56]byte      // its own cache line: workers never share one
}

// Enter marks the start of a batch of Protect and Validate calls.
func (r *Reader) Enter() { r.state.Add(1) }

// Leave marks its end.
func (r *Reader) Leave() { r.state.Add(1) }

// NewReader registers a reader; Release it when the goroutine stops.
func (s *SecY) NewReader() *Reader {
	r := &Reader{}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.readers = append(s.readers, r)
	return r
}

// Release unregisters r.
func (s *SecY) Release(r *Reader) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for i, x := range s.readers {
		if x == r {
			s.readers = append(s.readers[:i], s.readers[i+1:]...)
			return
		}
	}
}

// retire wipes a crypto that was just swapped out of the SecY.
func (s *SecY) retire(c *saCrypto) {
	c.key.Wipe()
	s.rmu.Lock()
	type inside struct {
		r     *Reader
		state uint64
	}
	var wait []inside
	for _, r := range s.readers {
		if st := r.state.Load(); st&1 == 1 {
			wait = append(wait, inside{r, st})
		}
	}
	s.rmu.Unlock()
	if len(wait) == 0 {
		wipeAEAD(c.aead)
		return
	}
	s.retiring.Add(1)
	go func() {
		defer s.retiring.Add(-1)
		for _, w := range wait {
			for w.r.state.Load() == w.state {
				time.Sleep(time.Millisecond)
			}
		}
		wipeAEAD(c.aead)
	}()
}

// wipeAEAD zeroes the object behind a GCM AEAD when it is a struct with
// no pointers (Go's *gcm.GCM holds the key schedule by value); anything
// else is left to the garbage collector.
func wipeAEAD(a cipher.AEAD) {
	v := reflect.ValueOf(a)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct || hasPointers(v.Elem().Type()) {
		return
	}
	clear(unsafe.Slice((*byte)(v.UnsafePointer()), v.Elem().Type().Size()))
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	}
	return true
}
