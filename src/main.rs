#![forbid(unsafe_code)]

// mimalloc rather than glibc malloc, whose per-thread arenas keep freed memory: with the runtime's
// threads allocating every cached order and every API reply, the operator's peak RSS at 10,000
// orders was about 7% lower with mimalloc (tests/bench/scale.sh, "operator peak RSS").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    changeorder_operator::cli::main()
}
