package main

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets per power of
// two, so a reported latency is within 1/128 (under 0.8 %) of the truth.
const subBits = 7

// histBuckets covers latencies up to 2^47 ns (about 39 hours).
const histBuckets = (47 - subBits) << subBits

// histogram is a log-linear latency histogram in the manner of HDR
// Histogram: exact below 128 ns, then 128 buckets per power of two.
// Recording is a few instructions and never allocates. It is not safe for
// concurrent use; each worker keeps its own and they are merged at the end.
type histogram struct {
	counts [histBuckets]uint64
	total  uint64
	max    time.Duration
}

// bucketOf returns the bucket of v nanoseconds.
func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	i := (shift+1)<<subBits + int(v>>shift) - 1<<subBits
	return min(i, histBuckets-1)
}

// bucketHigh returns the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	shift := i>>subBits - 1
	top := uint64(i&(1<<subBits-1)) + 1<<subBits
	return (top+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.total++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// quantile returns the latency under which a fraction q of the recorded
// values fall, rounded up to its bucket's upper bound and never above the
// maximum recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketHigh(i)), h.max)
		}
	}
	return h.max
}
