// otapbench: the reference (Go) OTel Arrow encoder and decoder on given OTLP trace batches, the
// anchor of tests/bench/otap-codec.bench.ts. Reads length-prefixed (u32 LE)
// ExportTraceServiceRequest messages from FILE. One stream each way, as an exporter and a receiver
// run it: a producer encodes the batches in order (BatchArrowRecordsFromTraces, then the
// BatchArrowRecords message bytes), a consumer decodes those bytes in order (unmarshal,
// TracesFrom). Whole streams repeat for WARMUP_MS, then one fresh stream is timed per operation.
// Prints one JSON line: spans per CPU-second of the process (getrusage: GC included; run it with
// GOMAXPROCS=1 for one core) and the encoded bytes.
//
//	otapbench FILE zstd|none WARMUP_MS
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	arrowpb "github.com/open-telemetry/otel-arrow/go/api/experimental/arrow/v1"
	"github.com/open-telemetry/otel-arrow/go/pkg/config"
	"github.com/open-telemetry/otel-arrow/go/pkg/otel/arrow_record"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/proto"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: otapbench FILE zstd|none WARMUP_MS")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	zstd := os.Args[2] == "zstd"
	warm, _ := strconv.Atoi(os.Args[3])
	var batches []ptrace.Traces
	spans := 0
	u := ptrace.ProtoUnmarshaler{}
	for off := 0; off < len(raw); {
		n := int(binary.LittleEndian.Uint32(raw[off:]))
		t, err := u.UnmarshalTraces(raw[off+4 : off+4+n])
		if err != nil {
			panic(err)
		}
		batches = append(batches, t)
		spans += t.SpanCount()
		off += 4 + n
	}
	opt := config.WithNoZstd()
	if zstd {
		opt = config.WithZstd()
	}
	encodeAll := func(p *arrow_record.Producer) [][]byte {
		out := make([][]byte, len(batches))
		for i, t := range batches {
			bar, err := p.BatchArrowRecordsFromTraces(t)
			if err != nil {
				panic(err)
			}
			b, err := proto.Marshal(bar)
			if err != nil {
				panic(err)
			}
			out[i] = b
		}
		return out
	}
	decodeAll := func(c *arrow_record.Consumer, wires [][]byte) int {
		got := 0
		for _, w := range wires {
			bar := &arrowpb.BatchArrowRecords{}
			if err := proto.Unmarshal(w, bar); err != nil {
				panic(err)
			}
			ts, err := c.TracesFrom(bar)
			if err != nil {
				panic(err)
			}
			for _, t := range ts {
				got += t.SpanCount()
			}
		}
		return got
	}
	// warm-up: whole streams, as the timed ones
	var wires [][]byte
	for until := time.Now().Add(time.Duration(warm) * time.Millisecond); time.Now().Before(until); {
		p := arrow_record.NewProducerWithOptions(opt)
		wires = encodeAll(p)
		_ = p.Close()
		c := arrow_record.NewConsumer()
		decodeAll(c, wires)
		_ = c.Close()
	}
	p := arrow_record.NewProducerWithOptions(opt)
	c0 := cpu()
	wires = encodeAll(p)
	enc := cpu() - c0
	_ = p.Close()
	c := arrow_record.NewConsumer()
	c0 = cpu()
	got := decodeAll(c, wires)
	dec := cpu() - c0
	_ = c.Close()
	if got != spans {
		panic(fmt.Sprintf("decoded %d spans of %d", got, spans))
	}
	bytes := 0
	for _, w := range wires {
		bytes += len(w)
	}
	out, _ := json.Marshal(map[string]float64{
		"spans": float64(spans), "batches": float64(len(batches)), "bytes": float64(bytes),
		"encode": float64(spans) / enc.Seconds(), "decode": float64(spans) / dec.Seconds(),
	})
	fmt.Println(string(out))
}
