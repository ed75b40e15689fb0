//! The `lsnn-host` command line: parses the arguments, runs one command of [`lsnn_host::apps`]
//! and prints what it returns. Library code returns `Result`s; only this file prints.
//!
//! Exit codes: 0 success, 1 a check failed, 2 bad input (malformed or unreadable files, bad
//! arguments).

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use lsnn_host::apps::bench::{run_bench, BenchArgs};
use lsnn_host::apps::eval::{eval, EvalArgs};
use lsnn_host::apps::export::{export, ExportArgs};
use lsnn_host::apps::fixtures::{check, CheckArgs};
use lsnn_host::apps::infer::{infer, InferArgs};
use lsnn_host::apps::train::{train, TrainTask};
use lsnn_host::runs::config::expand_config_args;
use lsnn_host::HostError;
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
    Infer(InferArgs),
    /// Export a trained run as a model file (f32, or quantised to i16 / i8) and input sequences.
    Export(ExportArgs),
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
enum FixturesCommand {
    /// Check fixture files against every backend that computes their quantities.
    ///
    /// Prints one line per (file, backend, quantity): PASS/FAIL, the file, the backend
    /// ("(f32)" when a float64 fixture is checked in f32, "-" when none computes the quantity),
    /// the quantity and its largest error. Exits 0 if all passed, 1 if a check failed, 2 if a
    /// file was malformed or unreadable.
    Check(CheckArgs),
}

fn main() -> ExitCode {
    let argv = match expand_config_args(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => return ExitCode::from(fail_code(&e)),
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
        Command::Train { task } => {
            let explicit_n_iter = matches
                .subcommand()
                .and_then(|(_, m)| m.subcommand())
                .and_then(|(_, m)| m.value_source("n_iter"))
                == Some(clap::parser::ValueSource::CommandLine);
            let announce = |dir: Option<&std::path::Path>| {
                if let Some(dir) = dir {
                    println!("results: {}", dir.display());
                }
            };
            print_line(train(task, explicit_n_iter, announce))
        }
        Command::Infer(args) => match infer(&args) {
            Ok(report) => {
                println!("{}", report.summary_line());
                print_json(&report)
            }
            Err(e) => fail_code(&e),
        },
        Command::Bench(args) => match run_bench(&args) {
            Ok(result) => print_json(&result),
            Err(e) => fail_code(&e),
        },
        Command::Export(args) => match export(&args) {
            Ok(report) => print_json(&report),
            Err(e) => fail_code(&e),
        },
        Command::Eval(args) => match eval(&args) {
            Ok((accuracy, n)) => {
                println!("test accuracy {accuracy:.4} over {n} images");
                print_json(&serde_json::json!({"test_accuracy": accuracy, "n": n}))
            }
            Err(e) => fail_code(&e),
        },
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

fn print_json(value: &impl serde::Serialize) -> u8 {
    println!("{}", serde_json::to_string(value).unwrap_or_default());
    0
}

fn print_line(result: Result<String, HostError>) -> u8 {
    match result {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => fail_code(&e),
    }
}

fn fixtures_check(args: &CheckArgs) -> u8 {
    let summary = check(args, |line| match line {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("error: {e}"),
    });
    match summary {
        Ok(summary) => {
            eprintln!("summary: {summary}");
            summary.exit_code() as u8
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
