//! The screen of a process's terminal, kept by a terminal emulator (the
//! `vt100` crate) fed with every byte the process writes, so a program or an
//! agent can read what the terminal shows as text.

use tether_protocol::{Cursor, Screen};

/// Keeps the window title a program sets (OSC 0 and 2).
#[derive(Default)]
struct Title(Option<String>);

impl vt100::Callbacks for Title {
    fn set_window_title(&mut self, _: &mut vt100::Screen, title: &[u8]) {
        self.0 = Some(String::from_utf8_lossy(title).into_owned()).filter(|t| !t.is_empty());
    }
}

pub struct Emulator {
    parser: vt100::Parser<Title>,
    /// The output offset the screen reflects.
    offset: u64,
}

impl Emulator {
    pub fn new(cols: u16, rows: u16) -> Emulator {
        Emulator { parser: vt100::Parser::new_with_callbacks(rows, cols, 0, Title::default()), offset: 0 }
    }

    /// Feeds bytes; `offset` is the output offset after them.
    pub fn feed(&mut self, bytes: &[u8], offset: u64) {
        self.parser.process(bytes);
        self.offset = offset;
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.parser.screen_mut().set_size(rows, cols);
    }

    pub fn snapshot(&self) -> Screen {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        let lines = screen.rows(0, cols).map(|l| l.trim_end().to_string()).collect();
        let (row, col) = screen.cursor_position();
        let title = self.parser.callbacks().0.clone();
        Screen {
            cols,
            rows,
            lines,
            cursor: Cursor { row, col, visible: !screen.hide_cursor() },
            title,
            alternate_screen: screen.alternate_screen(),
            offset: self.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_screen_program_is_read_as_rows() {
        let mut emu = Emulator::new(20, 5);
        // Alternate screen, clear, a title, text at row 3 column 5, cursor hidden.
        emu.feed(b"\x1b[?1049h\x1b[2J\x1b]2;my app\x07\x1b[3;5Hhello\x1b[?25l", 40);
        let s = emu.snapshot();
        assert_eq!((s.cols, s.rows), (20, 5));
        assert_eq!(s.lines[2], "    hello");
        assert_eq!(s.title.as_deref(), Some("my app"));
        assert!(s.alternate_screen);
        assert!(!s.cursor.visible);
        assert_eq!((s.cursor.row, s.cursor.col), (2, 9));
        assert_eq!(s.offset, 40);
        emu.resize(30, 8);
        assert_eq!(emu.snapshot().lines.len(), 8);
    }
}
