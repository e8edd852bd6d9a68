#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cdn_node::cli::main(cdn_node::cli::Cli::parse())
}
