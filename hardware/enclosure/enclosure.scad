// Caisse terminal enclosure: a base tray and a lid with a sun visor over the display.
// Print both in PETG (UV and heat on a market stall), 0.2 mm layers, 3 walls, no supports
// (the lid prints face down, the visor is printed as part of the lid, upright).
//
//   openscad -o enclosure.stl enclosure.scad            # base and lid side by side
//   openscad -o lid.stl -D 'part="lid"' enclosure.scad
//
// Inside, along the length (y): keypad at the front, the PN532 antenna in the middle under the
// "card here" ring, the display at the back under the visor. Sizes in mm.

part = "all";          // "all", "base" or "lid"

width = 96;            // x
length = 190;          // y
base_height = 28;      // z, tray with the battery, ESP32 and perfboard
lid_thickness = 2.4;
wall = 2.4;
corner = 6;
boss_inset = wall + 3;  // lid screw bosses overlap the walls so they fuse into them

keypad = [70, 78];     // 4x4 membrane, glued on the lid; its ribbon goes through a slot
keypad_y = 8;
nfc_y = 96;            // centre of the PN532 antenna (module 43 x 41)
nfc_ring = 22;         // radius of the engraved "card here" ring
display_window = [58, 30]; // visible area of the 2.42in OLED
display_y = 145;
visor_depth = 22;      // how far the hood sticks out: shades the screen from a high sun
visor_height = 18;

usb_c = [10, 4.5];     // TP4056 USB-C charging socket, on the back wall
switch_slot = [9, 4];  // SS12D00 slide switch, on the right wall
led_d = 5.2;
buzzer_holes = 5;

module rounded_box(size, r) {
    hull() for (x = [r, size[0] - r], y = [r, size[1] - r])
        translate([x, y, 0]) cylinder(r = r, h = size[2], $fn = 32);
}

module base() {
    difference() {
        rounded_box([width, length, base_height], corner);
        translate([wall, wall, wall])
            rounded_box([width - 2 * wall, length - 2 * wall, base_height], corner - wall);
        // USB-C charging socket, back wall, 6 mm above the floor
        translate([width / 2 - usb_c[0] / 2, length - wall - 1, wall + 6])
            cube([usb_c[0], wall + 2, usb_c[1]]);
        // power switch, right wall
        translate([width - wall - 1, length - 40, base_height - 10])
            cube([wall + 2, switch_slot[0], switch_slot[1]]);
        // buzzer grille, floor under the buzzer
        for (i = [0:buzzer_holes - 1])
            translate([20 + i * 5, 30, -1]) cylinder(d = 2.5, h = wall + 2, $fn = 16);
    }
    // bosses for the M3 inserts that hold the lid
    for (x = [boss_inset, width - boss_inset], y = [boss_inset, length / 2, length - boss_inset])
        translate([x, y, 0]) difference() {
            cylinder(d = 8, h = base_height - 0.5, $fn = 24);
            translate([0, 0, wall]) cylinder(d = 4.2, h = base_height, $fn = 24);
        }
}

module lid() {
    difference() {
        rounded_box([width, length, lid_thickness], corner);
        // keypad ribbon slot
        translate([width / 2 - 10, keypad_y + keypad[1] + 1, -1]) cube([20, 2, lid_thickness + 2]);
        // display window
        translate([width / 2 - display_window[0] / 2, display_y, -1])
            cube([display_window[0], display_window[1], lid_thickness + 2]);
        // engraved ring where the card goes (0.8 mm deep)
        translate([width / 2, nfc_y, lid_thickness - 0.8]) difference() {
            cylinder(r = nfc_ring, h = 1, $fn = 64);
            translate([0, 0, -1]) cylinder(r = nfc_ring - 1.5, h = 3, $fn = 64);
        }
        // status LED
        translate([width - 14, nfc_y, -1]) cylinder(d = led_d, h = lid_thickness + 2, $fn = 24);
        // lid screws
        for (x = [boss_inset, width - boss_inset], y = [boss_inset, length / 2, length - boss_inset])
            translate([x, y, -1]) cylinder(d = 3.4, h = lid_thickness + 2, $fn = 16);
    }
    // keypad recess rim: a 1 mm frame that locates the membrane
    translate([width / 2 - keypad[0] / 2 - 1.5, keypad_y - 1.5, lid_thickness]) difference() {
        cube([keypad[0] + 3, keypad[1] + 3, 1]);
        translate([1.5, 1.5, -1]) cube([keypad[0], keypad[1], 3]);
    }
    // sun visor: a hood on three sides of the display window, open towards the customer
    translate([width / 2 - display_window[0] / 2 - 4, display_y - 2, lid_thickness]) difference() {
        cube([display_window[0] + 8, display_window[1] + 6, visor_height]);
        translate([2, -1, -1]) cube([display_window[0] + 4, display_window[1] + 5, visor_height + 2]);
    }
    translate([width / 2 - display_window[0] / 2 - 4, display_y + display_window[1] + 4 - visor_depth, lid_thickness + visor_height - 2])
        cube([display_window[0] + 8, visor_depth, 2]);
}

if (part == "base" || part == "all") base();
if (part == "lid") lid();
if (part == "all") translate([width + 10, 0, 0]) lid();
