use super::*;

#[test]
fn allowed_fast_set_matches_the_bep_6_vectors() {
    let ih = [0xAA; 20];
    assert_eq!(
        allowed_fast_set([80, 4, 4, 200], &ih, 1313, 7),
        [1059, 431, 808, 1217, 287, 376, 1188]
    );
    assert_eq!(
        allowed_fast_set([80, 4, 4, 200], &ih, 1313, 9),
        [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
    );
    // The last byte of the address does not matter; fewer pieces than k: all of them.
    assert_eq!(
        allowed_fast_set([80, 4, 4, 1], &ih, 1313, 7),
        allowed_fast_set([80, 4, 4, 200], &ih, 1313, 7)
    );
    let mut small = allowed_fast_set([1, 2, 3, 4], &ih, 3, 10);
    small.sort();
    assert_eq!(small, [0, 1, 2]);
}
