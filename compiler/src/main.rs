fn main() {
    eprintln!("aiec: under construction");
    std::process::exit(2);
}
