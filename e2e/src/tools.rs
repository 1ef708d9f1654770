//! Running command-line tools (`kubectl`, `helm`, workspace binaries) with a time limit, and
//! turning a failure into a panic message that shows the command and what it printed.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

/// How long one tool invocation may take: a safety net longer than any `--timeout` a test gives
/// a tool itself (`kubectl wait --timeout=240s` for a tenant to become Ready on a busy machine),
/// so that the tool's own timeout, with its message, is what a slow test meets.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `program args...` with extra `env`, feeding `stdin` if given; panics if it cannot be
/// started or outlives [`COMMAND_TIMEOUT`] (it is killed then).
pub async fn run(program: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin was piped");
        let input = input.to_owned();
        // Written concurrently: a tool may fill its stdout before it has read all of its input.
        tokio::spawn(async move {
            let _ = pipe.write_all(input.as_bytes()).await;
        });
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("running {}: {e}", describe(program, args)),
        Err(_) => panic!("{} did not finish within {COMMAND_TIMEOUT:?}", describe(program, args)),
    }
}

/// The stdout of a successful run, or a panic with the command, its status and both streams.
pub fn expect_success(program: &Path, args: &[&str], output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        panic!(
            "`{}` failed ({}):\n--- stderr\n{}--- stdout\n{stdout}",
            describe(program, args),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout
}

/// `name arg arg ...` for messages (the program's file name only).
pub fn describe(program: &Path, args: &[&str]) -> String {
    let name = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    std::iter::once(name.as_str()).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}
