fn main() {
    let text = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let mut n = 0;
    let iters: usize = std::env::args().nth(2).map_or(3000, |a| a.parse().unwrap());
    for _ in 0..iters {
        n += llmwatch::exposition::parse(&text, llmwatch::exposition::Mode::Strict)
            .unwrap()
            .sample_count();
    }
    println!("{n}");
}
