//! The 741-byte browser request shared by the parse benchmarks.

/// A Chrome-like navigation request, padded to exactly 741 bytes.
pub fn browser_request() -> Vec<u8> {
    let mut r = String::new();
    r.push_str("GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n");
    r.push_str("Host: www.kittyhell.com\r\n");
    r.push_str("User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_6_3; ja-JP-mac; rv:1.9.2.3) Gecko/20100401 Firefox/3.6.3\r\n");
    r.push_str("Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n");
    r.push_str("Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n");
    r.push_str("Accept-Encoding: gzip,deflate\r\n");
    r.push_str("Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n");
    r.push_str("Keep-Alive: 115\r\n");
    r.push_str("Connection: keep-alive\r\n");
    r.push_str("Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; __utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; __utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcmd=referral\r\n");
    r.push_str("Sec-Fetch-Mode: navigate\r\n");
    r.push_str("Upgrade-Insecure-Requests: 1\r\n");
    let pad = 741usize.saturating_sub(r.len() + "Cache-Control: \r\n\r\n".len());
    r.push_str(&format!("Cache-Control: {}\r\n\r\n", "m".repeat(pad)));
    assert_eq!(r.len(), 741);
    r.into_bytes()
}
