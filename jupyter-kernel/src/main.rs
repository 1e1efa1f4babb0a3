//! The `kgent` binary: the Jupyter kernel, its installer, and `kgent doctor`.

mod assistant;
mod check;
mod coalesce;
mod diagnostics_view;
mod doctor;
mod execute;
mod highlight;
mod history;
mod install;
mod introspect;
mod knowledge;
mod llm_magic;
mod nl_cell;
mod server;
mod synth_cli;
mod trace_cell;
mod verification_view;
mod verify_cell;
mod verify_cli;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kgent",
    version,
    about = "Trace and extend the Linux kernel from Jupyter notebooks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the Jupyter kernelspec.
    Install {
        /// Into the user's Jupyter data directory (the default unless root).
        #[arg(long, conflicts_with_all = ["prefix", "sys_prefix"])]
        user: bool,
        /// Into PREFIX/share/jupyter/kernels (e.g. a virtualenv).
        #[arg(long, value_name = "DIR")]
        prefix: Option<PathBuf>,
        /// Into the running Python environment ($VIRTUAL_ENV).
        #[arg(long = "sys-prefix", conflicts_with = "prefix")]
        sys_prefix: bool,
        /// Kernel name.
        #[arg(long, default_value = install::DEFAULT_KERNEL_NAME)]
        name: String,
        /// Name shown in the notebook's kernel picker.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Remove the Jupyter kernelspec.
    Uninstall {
        #[arg(long, conflicts_with = "prefix")]
        user: bool,
        #[arg(long, value_name = "DIR")]
        prefix: Option<PathBuf>,
        #[arg(long, default_value = install::DEFAULT_KERNEL_NAME)]
        name: String,
    },
    /// Run the kernel (Jupyter starts this).
    Kernel {
        #[arg(long, short = 'f', value_name = "FILE")]
        connection_file: PathBuf,
    },
    /// Check a bpftrace program against the running kernel before running it.
    /// Exit status: 0 no errors, 1 errors, 2 usage error.
    Check {
        /// The program file, or `-` for standard input.
        file: PathBuf,
        /// Machine-readable diagnostics.
        #[arg(long)]
        json: bool,
        /// Also load it in the kernel (verifier and attach), then detach at once.
        #[arg(long)]
        load: bool,
        /// Allow unsafe builtins such as system().
        #[arg(long = "unsafe")]
        allow_unsafe: bool,
    },
    /// Write a bpftrace program for a plain-English request, checked against this kernel
    /// (program on stdout). Exit status: 0 accepted, 1 none (a hint is needed), 2 usage error.
    Synth(synth_cli::SynthArgs),
    /// Decide a program's assertions with the symbolic verifier, after annotating it from
    /// its attach points' contracts and the rules (`--request`). Exit status: 0 all proved,
    /// 1 one refuted, 3 some unknown, 2 usage error.
    Verify(verify_cli::VerifyArgs),
    /// Tell what this machine offers for tracing, with fixes for what is missing.
    Doctor {
        /// Probe again instead of using the cached answer.
        #[arg(long)]
        refresh: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn location(
    user: bool,
    prefix: Option<PathBuf>,
    sys_prefix: bool,
) -> anyhow::Result<install::Location> {
    if let Some(p) = prefix {
        return Ok(install::Location::Prefix(p));
    }
    if sys_prefix {
        let venv = std::env::var_os("VIRTUAL_ENV").ok_or_else(|| {
            anyhow::anyhow!("--sys-prefix needs an active virtualenv (VIRTUAL_ENV is not set)")
        })?;
        return Ok(install::Location::Prefix(PathBuf::from(venv)));
    }
    // SAFETY: geteuid has no preconditions.
    if user || unsafe { libc::geteuid() } != 0 {
        Ok(install::Location::User)
    } else {
        Ok(install::Location::System)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Install {
            user,
            prefix,
            sys_prefix,
            name,
            display_name,
        } => location(user, prefix, sys_prefix)
            .and_then(|loc| install::install(&loc, &name, display_name.as_deref()))
            .map(|dir| {
                println!("Installed kernelspec {name} in {}", dir.display());
                ExitCode::SUCCESS
            }),
        Command::Uninstall { user, prefix, name } => location(user, prefix, false)
            .and_then(|loc| install::uninstall(&loc, &name))
            .map(|removed| {
                match removed {
                    Some(dir) => println!("Removed kernelspec {name} from {}", dir.display()),
                    None => println!("No kernelspec {name} was installed there"),
                }
                ExitCode::SUCCESS
            }),
        Command::Kernel { connection_file } => run_kernel(connection_file),
        Command::Doctor { refresh, json } => Ok(doctor::run(refresh, json)),
        Command::Synth(args) => synth_cli::main(args),
        Command::Verify(args) => verify_cli::main(args),
        Command::Check {
            file,
            json,
            load,
            allow_unsafe,
        } => run_check(check::CheckArgs {
            file: &file,
            json,
            load,
            allow_unsafe,
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kgent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_check(args: check::CheckArgs<'_>) -> anyhow::Result<ExitCode> {
    // Only the load check waits on a child process; without it no runtime is needed.
    if !args.load {
        return Ok(check::run_now(args));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(check::run(args));
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(code)
}

fn run_kernel(connection_file: PathBuf) -> anyhow::Result<ExitCode> {
    // One thread: child processes get PR_SET_PDEATHSIG, which fires when the *thread*
    // that spawned them exits, so they must be spawned from a thread that lives as long
    // as the process. Blocking work (catalog, probing) goes to the blocking pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(server::run(&connection_file))?;
    // Do not wait for blocking-pool tasks (capability probing) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(ExitCode::SUCCESS)
}
