// The franz-go peer of the benchmark: reads COUNT records from offset 0 of partitions
// 0..PARTITIONS of TOPIC, writes each value and a newline to stdout, and prints
// "consumed N" to stderr. Usage: franz-go-consume BROKERS TOPIC PARTITIONS COUNT
// With BENCH_FLUSH_EACH_POLL=1 in the environment it flushes after every poll (the latency
// benchmark reads the records as they come). With BENCH_GROUP=G it joins consumer group G and
// consumes TOPIC (from the start, committing nothing) instead of naming the partitions. With
// BENCH_LOW_LATENCY=1 it sets FetchMaxWait to 10 ms (the broker's wait when no record arrives).
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: franz-go-consume BROKERS TOPIC PARTITIONS COUNT")
		os.Exit(2)
	}
	brokers, topic := os.Args[1], os.Args[2]
	partitions, _ := strconv.Atoi(os.Args[3])
	count, _ := strconv.Atoi(os.Args[4])
	offsets := map[int32]kgo.Offset{}
	for p := 0; p < partitions; p++ {
		offsets[int32(p)] = kgo.NewOffset().AtStart()
	}
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(brokers, ",")...)}
	if os.Getenv("BENCH_LOW_LATENCY") == "1" {
		opts = append(opts, kgo.FetchMaxWait(10*time.Millisecond))
	}
	if group := os.Getenv("BENCH_GROUP"); group != "" {
		opts = append(opts,
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
		)
	} else {
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	flushEachPoll := os.Getenv("BENCH_FLUSH_EACH_POLL") == "1"
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	n := 0
	ctx := context.Background()
	for n < count {
		fetches := client.PollFetches(ctx)
		if errs := fetches.Errors(); len(errs) > 0 {
			fmt.Fprintln(os.Stderr, errs)
			os.Exit(1)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			out.Write(r.Value)
			out.WriteByte('\n')
			n++
		})
		if flushEachPoll {
			out.Flush()
		}
	}
	out.Flush()
	fmt.Fprintf(os.Stderr, "consumed %d\n", n)
}
