//! `parity-operator`: see `parity_operator::operator_bin`.

fn main() -> std::process::ExitCode {
    parity_operator::operator_bin::main()
}
