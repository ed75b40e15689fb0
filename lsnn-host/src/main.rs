//! The `lsnn-host` command line. Library code returns `Result`s; only this file prints.
//!
//! Exit codes: 0 success, 1 a check failed, 2 bad input (malformed or unreadable files, bad
//! arguments).

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use lsnn_host::apps::bench::{bench, BenchTask};
use lsnn_host::apps::smnist::{SmnistFlags, SmnistSession};
use lsnn_host::apps::store_recall::{Hooks, Session, StoreRecallFlags};
use lsnn_host::apps::{config, export, infer};
use lsnn_host::fixture::{check_file, expand_paths, select_backends, CheckOptions, Summary};
use lsnn_host::HostError;
use std::path::PathBuf;
use std::process::ExitCode;

/// LSNN on a workstation.
#[derive(Debug, Parser)]
#[command(name = "lsnn-host", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Train a tutorial task.
    Train {
        #[command(subcommand)]
        task: TrainTask,
    },
    /// Run an exported model (.lsnn) through lsnn-core on task data.
    Infer(infer::InferArgs),
    /// Export a trained run as a model file (f32, or quantised to i16 / i8) and input sequences.
    Export(export::ExportArgs),
    /// Test accuracy of a trained sMNIST run (host forward over the test set).
    Eval(EvalArgs),
    /// Time full training iterations of a tutorial configuration.
    Bench(BenchArgs),
    /// Work with fixture files (lsnn-fixture/1).
    Fixtures {
        #[command(subcommand)]
        command: FixturesCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TrainTask {
    /// The store-recall task of tutorial_storerecall_with_LSNN.py (all its flags, kebab case).
    #[command(args_override_self = true)]
    StoreRecall {
        #[command(flatten)]
        flags: Box<StoreRecallFlags>,
        /// Read flags from a TOML file (keys = flag names); flags given here override it.
        #[arg(long, value_name = "FILE.toml")]
        config: Option<PathBuf>,
        /// Continue the run saved in DIR exactly (its flags; --n-iter may raise the total).
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
    },
    /// Sequential MNIST of tutorial_sequential_mnist_with_LSNN.py (all its flags, kebab case).
    #[command(args_override_self = true)]
    Smnist {
        #[command(flatten)]
        flags: Box<SmnistFlags>,
        /// Read flags from a TOML file (keys = flag names); flags given here override it.
        #[arg(long, value_name = "FILE.toml")]
        config: Option<PathBuf>,
        /// Continue the run saved in DIR exactly (its flags; --n-iter may raise the total,
        /// --data-dir must name the same data).
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// A run folder of `train smnist` (its checkpoint.safetensors and flags.json).
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// The MNIST-format folder whose test set to evaluate.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Evaluate only the first N test images.
    #[arg(long)]
    limit: Option<usize>,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Which tutorial configuration.
    #[arg(long, value_enum)]
    task: BenchTask,
    /// Batch size (default: the tutorial's, 128 or 256).
    #[arg(long)]
    batch: Option<usize>,
    /// Timed iterations (after one warm-up).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// cpu, or cuda (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Debug, Subcommand)]
enum FixturesCommand {
    /// Check fixture files against every backend that computes their quantities.
    ///
    /// Prints one line per (file, backend, quantity): PASS/FAIL, the file, the backend
    /// ("(f32)" when a float64 fixture is checked in f32, "-" when none computes the quantity),
    /// the quantity and its largest error. Exits 0 if all passed, 1 if a check failed, 2 if a
    /// file was malformed or unreadable.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Fixture files, or directories whose *.json files are checked (sorted).
    #[arg(required = true, value_name = "FILE")]
    paths: Vec<PathBuf>,
    /// Only these backends (repeatable; default: all available).
    #[arg(long = "backend", value_name = "NAME")]
    backends: Vec<String>,
    /// Also check float64 fixtures in f32 on backends that compute in f64 (as "(f32)" lines).
    #[arg(long)]
    also_f32: bool,
}

fn main() -> ExitCode {
    let argv = match config::expand_config_args(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => return fail(&e),
    };
    let matches = Cli::command().get_matches_from(argv);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let code = match cli.command {
        Command::Fixtures {
            command: FixturesCommand::Check(args),
        } => fixtures_check(&args),
        Command::Train { task } => train(task, &matches),
        Command::Infer(args) => match infer::infer(&args) {
            Ok(report) => {
                println!("{}", report.summary_line());
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
                0
            }
            Err(e) => fail_code(&e),
        },
        Command::Bench(args) => run_bench(&args),
        Command::Export(args) => match export::export(&args) {
            Ok(report) => {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
                0
            }
            Err(e) => fail_code(&e),
        },
        Command::Eval(args) => eval(&args),
    };
    ExitCode::from(code)
}

/// 2 for bad input (flags, files, checkpoints), 1 for a computation that failed.
fn fail_code(e: &HostError) -> u8 {
    eprintln!("error: {e}");
    match e {
        HostError::Training { .. } | HostError::NonFinite { .. } => 1,
        _ => 2,
    }
}

fn fail(e: &HostError) -> ExitCode {
    ExitCode::from(fail_code(e))
}

fn train(task: TrainTask, matches: &ArgMatches) -> u8 {
    let explicit_n_iter = matches
        .subcommand()
        .and_then(|(_, m)| m.subcommand())
        .and_then(|(_, m)| m.value_source("n_iter"))
        == Some(clap::parser::ValueSource::CommandLine);
    let result = match task {
        TrainTask::StoreRecall { flags, resume, .. } => {
            let session = match resume {
                Some(dir) => Session::resume(&dir, explicit_n_iter.then_some(flags.n_iter)),
                None => Session::new(*flags),
            };
            session.and_then(|mut s| {
                announce(s.run_dir.as_deref());
                s.run(Hooks::default()).map(|o| serde_json::to_string(&o))
            })
        }
        TrainTask::Smnist { flags, resume, .. } => {
            let session = match resume {
                Some(dir) => SmnistSession::resume(
                    &dir,
                    Some(&flags.data_dir),
                    explicit_n_iter.then_some(flags.n_iter),
                ),
                None => SmnistSession::new(*flags),
            };
            session.and_then(|mut s| {
                announce(s.run_dir.as_deref());
                s.run(Hooks::default()).map(|o| serde_json::to_string(&o))
            })
        }
    };
    match result {
        Ok(json) => {
            println!("{}", json.unwrap_or_default());
            0
        }
        Err(e) => fail_code(&e),
    }
}

fn announce(run_dir: Option<&std::path::Path>) {
    if let Some(dir) = run_dir {
        println!("results: {}", dir.display());
    }
}

fn eval(args: &EvalArgs) -> u8 {
    lsnn_host::apps::run::use_threads(args.threads);
    let session = SmnistSession::resume(&args.checkpoint, Some(&args.data_dir), None);
    match session.and_then(|s| s.predict_split(&s.data.test, args.limit)) {
        Ok((predictions, accuracy)) => {
            println!(
                "test accuracy {accuracy:.4} over {} images",
                predictions.len()
            );
            println!(
                "{}",
                serde_json::json!({"test_accuracy": accuracy, "n": predictions.len()})
            );
            0
        }
        Err(e) => fail_code(&e),
    }
}

fn run_bench(args: &BenchArgs) -> u8 {
    let result = match args.device.as_str() {
        "cpu" => bench(args.task, args.batch, args.iters, args.threads),
        #[cfg(feature = "cuda")]
        "cuda" => lsnn_host::apps::gpu::bench(args.task, args.batch, args.iters),
        #[cfg(not(feature = "cuda"))]
        "cuda" => Err(lsnn_host::apps::gpu::no_cuda_build()),
        other => Err(HostError::Flag {
            flag: "--device".into(),
            message: format!("`{other}` is not a device (cpu or cuda)"),
        }),
    };
    match result {
        Ok(result) => {
            println!("{}", serde_json::to_string(&result).unwrap_or_default());
            0
        }
        Err(e) => fail_code(&e),
    }
}

fn fixtures_check(args: &CheckArgs) -> u8 {
    let backends = match select_backends(&args.backends) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let options = CheckOptions {
        also_f32: args.also_f32,
    };
    let mut summary = Summary::default();
    for item in expand_paths(&args.paths) {
        match item.and_then(|path| check_file(&path, &backends, &options)) {
            Ok(lines) => {
                for line in &lines {
                    println!("{line}");
                    summary.record(line);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                summary.record_bad_input();
            }
        }
    }
    eprintln!("summary: {summary}");
    summary.exit_code() as u8
}
