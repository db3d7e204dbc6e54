fn main() -> std::process::ExitCode {
    bosun_api::cli::main()
}
