// TKN20 CP-ABE (Cloudflare CIRCL, abe/cpabe/tkn20, BLS12-381) timed the way bench/lib/measure.ts times MedShare:
// CPU time of the process (getrusage: user + system), each operation alternated in blocks with the reference
// pairing of the same library (ecc/bls12381.Pair) in the same process, medians over rounds of the per-round ratio.
// Prints one JSON line per case. Built and run by bench/peers/circl.sh (not by CI).
package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"

	cpabe "github.com/cloudflare/circl/abe/cpabe/tkn20"
	"github.com/cloudflare/circl/ecc/bls12381"
)

func cpuMs() float64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		panic(err)
	}
	return float64(u.Utime.Nano()+u.Stime.Nano()) / 1e6
}

func perCall(fn func(), calls int) float64 {
	start := cpuMs()
	for i := 0; i < calls; i++ {
		fn()
	}
	return (cpuMs() - start) / float64(calls)
}

// blockSize calibrates a block to at least blockMs of CPU after a warm-up call, as `alternate` does.
func blockSize(fn func(), blockMs float64) int {
	fn()
	calls := 1
	for perCall(fn, calls)*float64(calls) < blockMs && calls < 1<<16 {
		calls *= 2
	}
	return calls
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// alternate returns the median CPU ms per call of op and of its ratio to the pairing measured in the same round.
func alternate(pairing, op func(), rounds int) (ms, ratio, pairingMs float64) {
	pb, ob := blockSize(pairing, 4), blockSize(op, 4)
	var times, ratios, refs []float64
	for r := 0; r < rounds; r++ {
		ref := perCall(pairing, pb)
		t := perCall(op, ob)
		refs = append(refs, ref)
		times = append(times, t)
		ratios = append(ratios, t/ref)
	}
	return median(times), median(ratios), median(refs)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type result struct {
	Op        string  `json:"op"`
	N         int     `json:"n"`
	Ms        float64 `json:"ms"`
	Pairings  float64 `json:"pairings"`
	PairingMs float64 `json:"pairingMs"`
}

func main() {
	var k bls12381.Scalar
	must(k.Random(rand.Reader))
	p, q := new(bls12381.G1), new(bls12381.G2)
	p.ScalarMult(&k, bls12381.G1Generator())
	q.ScalarMult(&k, bls12381.G2Generator())
	pairing := func() { bls12381.Pair(p, q) }

	pk, msk, err := cpabe.Setup(rand.Reader)
	must(err)
	msg := make([]byte, 4096)
	out := json.NewEncoder(os.Stdout)
	emit := func(op string, n int, fn func()) {
		ms, ratio, ref := alternate(pairing, fn, 9)
		must(out.Encode(result{op, n, ms, ratio, ref}))
	}
	for _, n := range []int{10, 50} {
		names := make([]string, n)
		attrs := make(map[string]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("(attr%d: f)", i)
			attrs[fmt.Sprintf("attr%d", i)] = "f"
		}
		var attributes cpabe.Attributes
		attributes.FromMap(attrs)
		emit("keygen", n, func() { _, err := msk.KeyGen(rand.Reader, attributes); must(err) })
		key, err := msk.KeyGen(rand.Reader, attributes)
		must(err)
		for _, shape := range []string{"and", "or"} {
			var policy cpabe.Policy
			must(policy.FromString(strings.Join(names, " "+shape+" ")))
			emit("encrypt-"+shape, n, func() { _, err := pk.Encrypt(rand.Reader, policy, msg); must(err) })
			ct, err := pk.Encrypt(rand.Reader, policy, msg)
			must(err)
			emit("decrypt-"+shape, n, func() { _, err := key.Decrypt(ct); must(err) })
		}
	}
}
