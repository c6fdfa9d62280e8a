//! The `troupe` binary: parse arguments, dispatch, map the outcome to an exit code. Thin.

use std::process::ExitCode;

mod cli;
mod commands;
mod exit;
mod inputs;
mod render;
mod term;

fn main() -> ExitCode {
    let args = <cli::Cli as clap::Parser>::parse();
    let result = match args.command {
        cli::Command::Run(a) => commands::run::run(a),
        cli::Command::Validate(a) => commands::validate::run(a),
        cli::Command::Runs(a) => commands::runs::list(a),
        cli::Command::Show(a) => commands::runs::show(a),
        cli::Command::Resume(a) => commands::resume::resume(a),
        cli::Command::Replay(a) => commands::resume::replay(a),
        cli::Command::Export(a) => commands::runs::export(a),
        cli::Command::Approve(a) => commands::approve::approve(a),
        cli::Command::Serve(a) => commands::serve::serve(a),
        cli::Command::Schema(a) => commands::schema::run(a),
        cli::Command::Plugin(c) => commands::plugin::run(c),
        cli::Command::Mcp(cli::McpCommand::Serve(a)) => commands::mcp::serve(a),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => exit::report(&e),
    }
}
