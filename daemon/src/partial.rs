//! Settling a list of receipts some of which were refused before the request was sent
//! (text that is no receipt handle): the rest go in one request, and its answers are
//! put back among the refusals in the receipts' order.

/// The items that go in the request.
pub fn sendable<T: Clone, E>(items: &[Result<T, E>]) -> Vec<T> {
    items
        .iter()
        .filter_map(|i| i.as_ref().ok().cloned())
        .collect()
}

/// One outcome per item, in order: a refused item keeps its refusal, a sent one takes
/// the next answer (`missing()` when the answers ran out).
pub fn in_order<T, E>(
    items: Vec<Result<T, E>>,
    answers: Vec<Result<(), E>>,
    missing: impl Fn() -> E,
) -> Vec<Result<(), E>> {
    let mut answers = answers.into_iter();
    items
        .into_iter()
        .map(|i| match i {
            Ok(_) => answers.next().unwrap_or_else(|| Err(missing())),
            Err(e) => Err(e),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_go_back_among_the_refusals_in_order() {
        let items: Vec<Result<u32, &str>> = vec![Err("bad a"), Ok(1), Err("bad b"), Ok(2), Ok(3)];
        assert_eq!(sendable(&items), vec![1, 2, 3]);
        let answers = vec![Ok(()), Err("stale")];
        assert_eq!(
            in_order(items, answers, || "missing"),
            vec![
                Err("bad a"),
                Ok(()),
                Err("bad b"),
                Err("stale"),
                Err("missing")
            ]
        );
    }
}
