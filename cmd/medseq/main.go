// Command medseq predicts outcomes from patients' coded medical histories: MEDS data in,
// cohorts with leak-free censoring, a WordPiece tokenizer, a BERT and an XGBoost baseline,
// evaluation, and gRPC serving. Run `medseq help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand: its one-line summary and what runs it.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env carries what every command needs from the process: output streams and the logger.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	log            *slog.Logger
}

func commands() map[string]command {
	return map[string]command{
		"version":        {"print the version, git commit, build time and the shared libraries it loads", runVersion},
		"data synth":     {"write a synthetic primary-care EHR as a MEDS dataset", runDataSynth},
		"data import":    {"import events and subjects CSV files into a MEDS dataset", runDataImport},
		"data cohort":    {"build labels with leak-free prediction times, splits and a cohort report", runDataCohort},
		"data export":    {"write a MEDS folder into Iceberg tables (events bucketed by subject_id, subject_splits, codes)", runDataExport},
		"data info":      {"summarise a MEDS dataset", runDataInfo},
		"data sequences": {"print the censored sequences a model sees for a cohort", runDataSequences},
		"demo":           {"run the whole pipeline on synthetic data", runDemo},
		"train pretrain": {"pretrain a BERT masked-language model on the training split's records or cohort sequences (CPU or GPU)", runTrainPretrain},
		"train classify": {"train a BERT classifier on a cohort, from scratch or --init (CPU or GPU)", runTrainClassify},
		"train xgboost":  {"train the XGBoost baseline (libxgboost) and write a model version folder", runTrainXGBoost},
		"eval report": {"HTML + JSON report comparing model version folders (metrics, CIs, calibration, segments, " +
			"DeLong, plots)", runEvalReport},
		"eval censoring": {"a model's AUROC, prevalence and calibration as the cohort's follow-up requirement changes",
			runEvalCensoring},
		"eval curve": {"learning curves: XGBoost and BERT on nested fractions of the training split, held-out AUROC " +
			"against labels", runEvalCurve},
		"eval metrics": {"metrics with bootstrap intervals, calibration and segments from a predictions file",
			runEvalMetrics},
		"serve": {"serve a model repository, or one model version (KServe), over gRPC (medseq.v1.Predictor, Open " +
			"Inference Protocol v2, health, metrics)", runServe},
		"predict": {"score labelled subjects offline (--model), or one subject through a server (--addr)",
			runPredict},
		"tokenize build":  {"build the vocabulary and tokenizer from a cohort's censored training split", runTokenizeBuild},
		"tokenize encode": {"encode one subject's codes per line on stdin to token ids", runTokenizeEncode},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: medseq <command> [flags]\n\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'medseq <command> -h' for a command's flags.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}))
}

// run dispatches args and returns the exit code: 0 ok, 1 failure, 2 usage error.
func run(ctx context.Context, args []string, e *env) (code int) {
	level := slog.LevelInfo
	if v := os.Getenv("MEDSEQ_LOG_LEVEL"); strings.EqualFold(v, "debug") {
		level = slog.LevelDebug
	}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(e.stderr, "medseq: internal error: %v\n", r)
			code = 1
		}
	}()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stdout)
		return 0
	}
	cmds := commands()
	name := args[0]
	rest := args[1:]
	if len(args) > 1 {
		if _, ok := cmds[args[0]+" "+args[1]]; ok {
			name, rest = args[0]+" "+args[1], args[2:]
		}
	}
	c, ok := cmds[name]
	if !ok {
		fmt.Fprintf(e.stderr, "medseq: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
		usage(e.stderr)
		return 2
	}
	if err := c.run(ctx, e, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(e.stderr, "medseq %s: %v\n", name, err)
			return 2
		}
		fmt.Fprintf(e.stderr, "medseq %s: %v\n", name, err)
		return 1
	}
	return 0
}

// usageError is a bad flag or argument; it exits with status 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// newFlags returns a flag set for a command that reports errors instead of exiting.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("medseq "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: medseq %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and rejects stray positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
