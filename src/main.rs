use std::process::ExitCode;

fn main() -> ExitCode {
    fathometer::cli::main()
}
