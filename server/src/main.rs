#[global_allocator]
static ALLOCATOR: tether::alloc::Counting = tether::alloc::Counting;

fn main() -> std::process::ExitCode {
    tether::cli::main()
}
