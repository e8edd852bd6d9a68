//! HLS playlists shaped like the ones packagers write (Apple's examples in
//! RFC 8216 and the LL-HLS spec, Shaka/Bento4/MediaConvert output).

use super::*;

/// (case, playlist, expected with `{T}` for `jwt=<JWT>`); Host is `HOST`.
const CASES: &[(&str, &str, &str)] = &[
    (
        "master: variants, audio and subtitle renditions, I-frames, session key and data",
        r#"#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://key-1",KEYFORMAT="com.apple.streamingkeydelivery"
#EXT-X-SESSION-KEY:METHOD=AES-128,URI="keys/session.key"
#EXT-X-SESSION-DATA:DATA-ID="com.example.title",VALUE="Intro, part 1"
#EXT-X-SESSION-DATA:DATA-ID="com.example.meta",URI="meta.json"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",LANGUAGE="en",NAME="English",DEFAULT=YES,AUTOSELECT=YES,URI="audio/en/index.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",LANGUAGE="fr",NAME="Français, VF",URI="audio/fr/index.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",URI="subs/en.m3u8"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC1",INSTREAM-ID="CC1"
#EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=2200000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO="aac",SUBTITLES="subs",CLOSED-CAPTIONS="cc"
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS="avc1.4d401e,mp4a.40.2",RESOLUTION=640x360,AUDIO="aac"
https://cdn.example/course/360p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080
https://other-cdn.example/course/1080p/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=200000,CODECS="avc1.64001f",RESOLUTION=1280x720,URI="720p/iframes.m3u8"
"#,
        r#"#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://key-1",KEYFORMAT="com.apple.streamingkeydelivery"
#EXT-X-SESSION-KEY:METHOD=AES-128,URI="keys/session.key?{T}"
#EXT-X-SESSION-DATA:DATA-ID="com.example.title",VALUE="Intro, part 1"
#EXT-X-SESSION-DATA:DATA-ID="com.example.meta",URI="meta.json?{T}"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",LANGUAGE="en",NAME="English",DEFAULT=YES,AUTOSELECT=YES,URI="audio/en/index.m3u8?{T}"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",LANGUAGE="fr",NAME="Français, VF",URI="audio/fr/index.m3u8?{T}"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",URI="subs/en.m3u8?{T}"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC1",INSTREAM-ID="CC1"
#EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=2200000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO="aac",SUBTITLES="subs",CLOSED-CAPTIONS="cc"
720p/index.m3u8?{T}
#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS="avc1.4d401e,mp4a.40.2",RESOLUTION=640x360,AUDIO="aac"
https://cdn.example/course/360p/index.m3u8?{T}
#EXT-X-STREAM-INF:BANDWIDTH=5000000,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080
https://other-cdn.example/course/1080p/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=200000,CODECS="avc1.64001f",RESOLUTION=1280x720,URI="720p/iframes.m3u8?{T}"
"#,
    ),
    (
        "a URI= inside another attribute's quoted value is not the attribute",
        r#"#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="URI=fake.m3u8,",URI="real.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",X-URI="fake.m3u8",URI="real.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="only, URI=\"fake.m3u8\""
"#,
        r#"#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="URI=fake.m3u8,",URI="real.m3u8?{T}"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",X-URI="fake.m3u8",URI="real.m3u8?{T}"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="only, URI=\"fake.m3u8\""
"#,
    ),
    (
        "media: AES-128 key with IV, EXT-X-MAP with a byte range, byte-range segments",
        r#"#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-KEY:METHOD=AES-128,URI="https://cdn.example/keys/k1.key?kid=1",IV=0x00000000000000000000000000000001
#EXT-X-MAP:URI="main.mp4",BYTERANGE="720@0"
#EXTINF:6.000,
#EXT-X-BYTERANGE:1000000@720
main.mp4
#EXTINF:6.000,title, with comma
#EXT-X-BYTERANGE:1000000
main.mp4
#EXT-X-KEY:METHOD=NONE
#EXT-X-DISCONTINUITY
#EXTINF:4.5,
seg-3.ts?start=12
#EXT-X-ENDLIST
"#,
        r#"#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-KEY:METHOD=AES-128,URI="https://cdn.example/keys/k1.key?kid=1&{T}",IV=0x00000000000000000000000000000001
#EXT-X-MAP:URI="main.mp4?{T}",BYTERANGE="720@0"
#EXTINF:6.000,
#EXT-X-BYTERANGE:1000000@720
main.mp4?{T}
#EXTINF:6.000,title, with comma
#EXT-X-BYTERANGE:1000000
main.mp4?{T}
#EXT-X-KEY:METHOD=NONE
#EXT-X-DISCONTINUITY
#EXTINF:4.5,
seg-3.ts?start=12&{T}
#EXT-X-ENDLIST
"#,
    ),
    (
        "media: FairPlay and data: keys, other-host and already-tokened URIs stay",
        r#"#EXTM3U
#EXT-X-TARGETDURATION:10
#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://asset-42",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"
#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="data:text/plain;base64,AAAAPHBzc2g=",KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
#EXT-X-MAP:URI="init.mp4?jwt=someone-else"
#EXTINF:10,
https://other.example/seg1.m4s
#EXTINF:10,
seg2.m4s?token=abc
#EXTINF:10,
https://cdn.example:443/seg3.m4s
"#,
        r#"#EXTM3U
#EXT-X-TARGETDURATION:10
#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://asset-42",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"
#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="data:text/plain;base64,AAAAPHBzc2g=",KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
#EXT-X-MAP:URI="init.mp4?jwt=someone-else"
#EXTINF:10,
https://other.example/seg1.m4s
#EXTINF:10,
seg2.m4s?token=abc
#EXTINF:10,
https://cdn.example:443/seg3.m4s?{T}
"#,
    ),
    (
        "LL-HLS: parts, preload hint, rendition reports, skip",
        r#"#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-VERSION:9
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-SKIP:SKIPPED-SEGMENTS=3
#EXT-X-PROGRAM-DATE-TIME:2019-02-14T02:13:36.106Z
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.00008,
fileSequence266.mp4
#EXT-X-PART:DURATION=0.33334,URI="filePart267.0.mp4",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI="filePart267.1.mp4",BYTERANGE=20000@0
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="filePart267.2.mp4"
#EXT-X-RENDITION-REPORT:URI="../1M/waitForMSN.php",LAST-MSN=273,LAST-PART=2
#EXT-X-RENDITION-REPORT:URI="../4M/waitForMSN.php",LAST-MSN=273,LAST-PART=1
"#,
        r#"#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-VERSION:9
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-SKIP:SKIPPED-SEGMENTS=3
#EXT-X-PROGRAM-DATE-TIME:2019-02-14T02:13:36.106Z
#EXT-X-MAP:URI="init.mp4?{T}"
#EXTINF:4.00008,
fileSequence266.mp4?{T}
#EXT-X-PART:DURATION=0.33334,URI="filePart267.0.mp4?{T}",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI="filePart267.1.mp4?{T}",BYTERANGE=20000@0
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="filePart267.2.mp4?{T}"
#EXT-X-RENDITION-REPORT:URI="../1M/waitForMSN.php?{T}",LAST-MSN=273,LAST-PART=2
#EXT-X-RENDITION-REPORT:URI="../4M/waitForMSN.php?{T}",LAST-MSN=273,LAST-PART=1
"#,
    ),
    (
        "comments, unknown tags, blank and indented lines, odd attribute lists (read up to URI)",
        "#EXTM3U\n# a comment naming seg.ts\n\n   \n#EXT-X-DATERANGE:ID=\"ad\",X-ASSET-URI=\"ad.m3u8\"\n  #EXTINF:1,\n#EXT-X-KEY:METHOD=AES-128,URI=k.key\n#EXT-X-MAP:URI=\"open\n#EXT-X-MAP\n#EXT-X-MAP:URI=\"a.mp4\" junk\n#EXTINF:1,\nseg.ts\n",
        "#EXTM3U\n# a comment naming seg.ts\n\n   \n#EXT-X-DATERANGE:ID=\"ad\",X-ASSET-URI=\"ad.m3u8\"\n  #EXTINF:1,\n#EXT-X-KEY:METHOD=AES-128,URI=k.key\n#EXT-X-MAP:URI=\"open\n#EXT-X-MAP\n#EXT-X-MAP:URI=\"a.mp4?{T}\" junk\n#EXTINF:1,\nseg.ts?{T}\n",
    ),
    (
        "tolerated spacing in attribute lists",
        "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128, URI=\"k.key\", IV=0x1\n",
        "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128, URI=\"k.key?{T}\", IV=0x1\n",
    ),
    (
        "CRLF line endings kept",
        "#EXTM3U\r\n#EXT-X-MAP:URI=\"init.mp4\"\r\n#EXTINF:6,\r\nseg1.m4s\r\n\r\n#EXT-X-ENDLIST\r\n",
        "#EXTM3U\r\n#EXT-X-MAP:URI=\"init.mp4?{T}\"\r\n#EXTINF:6,\r\nseg1.m4s?{T}\r\n\r\n#EXT-X-ENDLIST\r\n",
    ),
    (
        "mixed line endings kept, last line without newline",
        "#EXTM3U\n#EXTINF:6,\r\nseg1.ts\n#EXTINF:6,\nseg2.ts\r\n#EXTINF:6,\nseg3.ts",
        "#EXTM3U\n#EXTINF:6,\r\nseg1.ts?{T}\n#EXTINF:6,\nseg2.ts?{T}\r\n#EXTINF:6,\nseg3.ts?{T}",
    ),
    (
        "a last tag line without newline",
        "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"",
        "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4?{T}\"",
    ),
    (
        "byte order mark before #EXTM3U kept",
        "\u{feff}#EXTM3U\nseg.ts\n",
        "\u{feff}#EXTM3U\nseg.ts?{T}\n",
    ),
    ("#EXTM3U alone", "#EXTM3U", "#EXTM3U"),
    (
        "#EXTM3U with trailing blanks",
        "#EXTM3U \t\r\na.ts",
        "#EXTM3U \t\r\na.ts?{T}",
    ),
];

#[test]
fn playlists() {
    for (case, input, want) in CASES {
        let got = run(Kind::Hls, input, Some(HOST));
        assert_eq!(got.as_deref(), Ok(expect(want).as_str()), "case: {case}");
    }
}

const NOT_PLAYLISTS: &[(&str, &[u8])] = &[
    ("empty", b""),
    ("no header", b"seg.ts\n#EXTM3U\n"),
    ("lower case", b"#extm3u\nseg.ts\n"),
    ("longer tag", b"#EXTM3U8\nseg.ts\n"),
    ("header after blank line", b"\n#EXTM3U\nseg.ts\n"),
    ("header after space", b" #EXTM3U\nseg.ts\n"),
    ("two BOMs", "\u{feff}\u{feff}#EXTM3U\n".as_bytes()),
    ("XML", b"<?xml version=\"1.0\"?><MPD/>"),
    ("HTML error page", b"<html><body>403</body></html>"),
];

#[test]
fn not_playlists() {
    for (case, body) in NOT_PLAYLISTS {
        let got = rewrite(Kind::Hls, body, &token(JWT), Some(HOST));
        assert_eq!(got, Err(Unchanged::NotAPlaylist), "case: {case}");
    }
}

#[test]
fn invalid_utf8_does_not_parse() {
    let bodies: [&[u8]; 3] = [
        b"#EXTM3U\nseg\xff.ts\n",
        b"\xef\xbb#EXTM3U\n",
        b"#EXTM3U\n#EXTINF:1,\xc3\n",
    ];
    for body in bodies {
        let got = rewrite(Kind::Hls, body, &token(JWT), Some(HOST));
        assert_eq!(got, Err(Unchanged::NotUtf8), "body {body:?}");
    }
}
