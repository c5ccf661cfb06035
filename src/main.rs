fn main() {
    println!("{}", outrigger_config::DESCRIPTORS.len());
}
